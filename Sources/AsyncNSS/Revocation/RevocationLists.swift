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
    /// The DER name of each list's issuer.
    private let issuers: [[UInt8]]
    /// When each list stops being fresh, if it says.
    private let nextUpdates: [PRTime?]
    /// Identifies these lists in client session-cache keys.
    let serial = SessionCacheKey.nextSerial()
    var count: Int { lists.count }
    private let state = Mutex(Cached())

    /// Reads each list, PEM or DER, and checks that NSS can decode it.
    init(_ sources: [([UInt8], String)]) throws {
        guard !sources.isEmpty else {
            throw TLSError(kind: .invalidConfiguration, operation: "loading certificate revocation lists", message: "no list given")
        }
        let decoded = try sources.map { bytes, source in try Self.decode(bytes, source: source) }
        lists = decoded.map(\.der)
        issuers = decoded.map(\.issuer)
        nextUpdates = decoded.map(\.nextUpdate)
    }

    private static func decode(_ bytes: [UInt8], source: String) throws -> (der: [UInt8], issuer: [UInt8], nextUpdate: PRTime?) {
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
        let fields = Self.withDecoded(der) { crl -> ([UInt8], PRTime?) in
            var nextUpdate: PRTime = 0
            let hasNextUpdate = crl.pointee.crl.nextUpdate.len > 0 && DER_DecodeTimeChoice(&nextUpdate, &crl.pointee.crl.nextUpdate) == SECSuccess
            return (crl.pointee.crl.derName.bytes, hasNextUpdate ? nextUpdate : nil)
        }
        guard let fields else { throw TLSError.fromLastNSSError(operation) }
        return (der, fields.0, fields.1)
    }

    private static func withDecoded<Result>(_ der: [UInt8], _ body: (UnsafeMutablePointer<CERTSignedCrl>) -> Result) -> Result? {
        var copy = der
        return copy.withUnsafeMutableBufferPointer { buffer -> Result? in
            var item = SECItem(type: siBuffer, data: buffer.baseAddress, len: UInt32(buffer.count))
            guard let crl = CERT_DecodeDERCrlWithFlags(nil, &item, SEC_CRL_TYPE, CRL_DECODE_DEFAULT_OPTIONS) else { return nil }
            defer { SEC_DestroyCrl(crl) }
            return body(crl)
        }
    }

    /// Why the peer's chain on `fd` is not covered, or nil when it is: every
    /// certificate it presented, but a self-issued one (a root), needs a list
    /// here from its issuer, signed by that issuer and not past its
    /// `nextUpdate`. NSS's own CRL check (soft: it finds a revoked entry, but
    /// takes a missing list for a pass) has run before.
    func uncovered(_ fd: UnsafeMutablePointer<PRFileDesc>) -> (PRErrorCode, String)? {
        var problem: (PRErrorCode, String)?
        ConnectionInfoReader.forEachPeerCertificate(fd) { certificate in
            guard problem == nil else { return }
            problem = uncovered(certificate)
        }
        return problem
    }

    private func uncovered(_ certificate: UnsafeMutablePointer<CERTCertificate>) -> (PRErrorCode, String)? {
        let issuerName = certificate.pointee.derIssuer.bytes
        guard issuerName != certificate.pointee.derSubject.bytes else { return nil }
        let issuerText = certificate.pointee.issuerName.map { String(cString: $0) } ?? "its issuer"
        guard let index = issuers.firstIndex(of: issuerName) else {
            return (PRErrorCode(SEC_ERROR_CRL_NOT_FOUND.rawValue), "RevocationPolicy.crl has no revocation list from \(issuerText).")
        }
        if let nextUpdate = nextUpdates[index], nextUpdate < PR_Now() {
            return (PRErrorCode(SEC_ERROR_CRL_EXPIRED.rawValue), "The revocation list from \(issuerText) is past its nextUpdate; give RevocationPolicy.crl a fresh one.")
        }
        guard let issuer = CERT_FindCertIssuer(certificate, PR_Now(), certUsageAnyCA), let key = CERT_ExtractPublicKey(issuer) else {
            return (PRErrorCode(SEC_ERROR_UNKNOWN_ISSUER.rawValue), "The issuer of a certificate in the chain is not known, so its revocation list cannot be checked.")
        }
        CERT_DestroyCertificate(issuer)
        defer { SECKEY_DestroyPublicKey(key) }
        let signed = Self.withDecoded(lists[index]) { CERT_VerifySignedDataWithPublicKey(&$0.pointee.signatureWrap, key, nil) == SECSuccess } ?? false
        guard signed else {
            return (PRErrorCode(SEC_ERROR_CRL_BAD_SIGNATURE.rawValue), "The revocation list from \(issuerText) is not signed by that issuer.")
        }
        return nil
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
