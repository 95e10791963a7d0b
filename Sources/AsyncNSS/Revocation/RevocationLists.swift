internal import CNSS
import Synchronization

/// Certificate revocation lists given to a ``RevocationPolicy``, added to
/// NSS's CRL cache (`CERT_CacheCRL`) the first time a verification needs them,
/// and removed from it when the last policy that holds them goes away or the
/// runtime shuts down.
///
/// NSS's cache refers to each list's memory directly, so the memory is the
/// object's own, allocated once, and freed only after `CERT_UncacheCRL`.
final class RevocationLists: RuntimeResource, Sendable {
    private struct Cached: @unchecked Sendable {
        // @unchecked Sendable: the items and their bytes are only touched
        // under `state`'s lock, and NSS reads them from any thread once cached
        // (its CRL cache locks itself).
        var items: [UnsafeMutablePointer<SECItem>] = []
        var services: RuntimeServices?
    }

    /// The DER of each list.
    let lists: [[UInt8]]
    /// Identifies these lists in client session-cache keys.
    let serial = SessionCacheKey.nextSerial()
    var count: Int { lists.count }
    private let state = Mutex(Cached())

    /// Reads each list, PEM or DER, and checks that NSS can decode it.
    init(_ sources: [([UInt8], String)]) throws {
        guard !sources.isEmpty else {
            throw TLSError(kind: .invalidConfiguration, operation: "loading certificate revocation lists", message: "no list given")
        }
        lists = try sources.map { bytes, source in try Self.der(bytes, source: source) }
    }

    private static func der(_ bytes: [UInt8], source: String) throws -> [UInt8] {
        let operation = "loading the certificate revocation list \(source)"
        var der = bytes
        if bytes.starts(with: Array("-----BEGIN".utf8)) {
            let blocks: [PEMBlock]
            do { blocks = try PEM.parse(String(decoding: bytes, as: UTF8.self)) } catch {
                throw TLSError(kind: .invalidConfiguration, operation: operation, message: "not a valid PEM file: \(error)")
            }
            guard let block = blocks.first(where: { $0.label == "X509 CRL" }) else {
                throw TLSError(kind: .invalidConfiguration, operation: operation, message: "no -----BEGIN X509 CRL----- block found")
            }
            der = block.der
        }
        let decoded = der.withUnsafeMutableBufferPointer { buffer -> Bool in
            var item = SECItem(type: siBuffer, data: buffer.baseAddress, len: UInt32(buffer.count))
            guard let crl = CERT_DecodeDERCrlWithFlags(nil, &item, SEC_CRL_TYPE, CRL_DECODE_DEFAULT_OPTIONS) else { return false }
            SEC_DestroyCrl(crl)
            return true
        }
        guard decoded else { throw TLSError.fromLastNSSError(operation) }
        return der
    }

    /// Adds the lists to NSS's cache once per runtime.
    func cache(services: RuntimeServices) throws {
        try state.withLock { state in
            if state.services === services { return }
            Self.uncache(&state)
            for (index, der) in lists.enumerated() {
                let bytes = UnsafeMutablePointer<UInt8>.allocate(capacity: max(der.count, 1))
                bytes.initialize(from: der, count: der.count)
                let item = UnsafeMutablePointer<SECItem>.allocate(capacity: 1)
                item.initialize(to: SECItem(type: siBuffer, data: bytes, len: UInt32(der.count)))
                guard CERT_CacheCRL(CERT_GetDefaultCertDB(), item) == SECSuccess else {
                    let error = TLSError.fromLastNSSError("adding certificate revocation list \(index + 1) to NSS's cache")
                    bytes.deallocate()
                    item.deallocate()
                    throw error
                }
                state.items.append(item)
            }
            state.services = services
            services.resources.add(self)
        }
    }

    deinit {
        let services = state.withLock { state in
            defer { Self.uncache(&state) }
            return state.services
        }
        services?.resources.remove(ObjectIdentifier(self))
    }

    func releaseForShutdown() async {
        state.withLock { Self.uncache(&$0) }
    }

    private static func uncache(_ state: inout Cached) {
        for item in state.items {
            _ = CERT_UncacheCRL(CERT_GetDefaultCertDB(), item)
            item.pointee.data?.deallocate()
            item.deallocate()
        }
        state.items.removeAll()
        state.services = nil
    }
}
