internal import CNSS

/// An IPv4 or IPv6 address with a port.
// @unchecked Sendable: PRNetAddr is a plain C union of integers and byte
// arrays with no pointers; copies share nothing.
struct NetworkAddress: @unchecked Sendable, CustomStringConvertible {
    var raw: PRNetAddr

    /// Parses an IP literal (`127.0.0.1`, `::1`, `[::1]`), or returns nil for a host name.
    init?(literal host: String, port: UInt16) {
        var address = PRNetAddr()
        guard PR_StringToNetAddr(Self.bareHost(host), &address) == PR_SUCCESS else { return nil }
        self.raw = address
        self.port = port
    }

    init(raw: PRNetAddr) { self.raw = raw }

    /// `host` without the brackets of an IPv6 literal (`[::1]` is `::1`).
    static func bareHost(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    /// `port` as a TCP port number.
    static func port(_ port: Int, _ operation: String) throws -> UInt16 {
        guard let port = UInt16(exactly: port) else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "the port must be between 0 and 65535")
        }
        return port
    }

    /// Runs `attempt` on each address in turn until one succeeds. An error for
    /// which `tryNext` is false, and cancellation, end the search at once;
    /// otherwise the last error is thrown.
    static func firstConnected<Result>(
        _ addresses: [NetworkAddress],
        operation: String,
        tryNext: (any Error) -> Bool,
        _ attempt: (NetworkAddress) async throws -> Result
    ) async throws -> Result {
        var lastError: any Error = TLSError(kind: .nameResolution, operation: operation, message: "no addresses")
        for address in addresses {
            try Task.checkCancellation()
            do {
                return try await attempt(address)
            } catch let error as CancellationError {
                throw error
            } catch where tryNext(error) {
                lastError = error
            }
        }
        throw lastError
    }

    var isIPv6: Bool { raw.raw.family == UInt16(PR_AF_INET6) }

    var family: Int32 { isIPv6 ? Int32(PR_AF_INET6) : Int32(PR_AF_INET) }

    var port: UInt16 {
        get { PR_ntohs(isIPv6 ? raw.ipv6.port : raw.inet.port) }
        set {
            if isIPv6 { raw.ipv6.port = PR_htons(newValue) } else { raw.inet.port = PR_htons(newValue) }
        }
    }

    /// `127.0.0.1:8443` or `[::1]:8443`.
    var description: String {
        if isIPv6 { return "[\(Self.hostText(raw))]:\(port)" }
        return "\(Self.dottedQuad(raw.inet.ip)):\(port)"
    }

    /// An IPv4 address (in network byte order) as `PR_NetAddrToString`
    /// writes it, without its cost: NSPR goes through `getnameinfo`, which
    /// formats each byte with `sprintf`, and every accepted connection's
    /// peer is described.
    static func dottedQuad(_ networkOrder: UInt32) -> String {
        withUnsafeBytes(of: networkOrder) { bytes in
            String(unsafeUninitializedCapacity: 15) { text in
                var count = 0
                for (index, byte) in bytes.enumerated() {
                    if index > 0 {
                        text[count] = UInt8(ascii: ".")
                        count += 1
                    }
                    if byte >= 100 {
                        text[count] = UInt8(ascii: "0") + byte / 100
                        count += 1
                    }
                    if byte >= 10 {
                        text[count] = UInt8(ascii: "0") + byte / 10 % 10
                        count += 1
                    }
                    text[count] = UInt8(ascii: "0") + byte % 10
                    count += 1
                }
                return count
            }
        }
    }

    /// The address without its port, formatted by NSPR in a buffer on the
    /// thread's stack (IPv6; IPv4 has ``dottedQuad(_:)``). Never inlined,
    /// so that the buffer does not become part of an async caller's frame,
    /// which its task would keep for the connection's life.
    @inline(never)
    static func hostText(_ raw: PRNetAddr) -> String {
        var address = raw
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 128) { buffer -> String in
            guard let base = buffer.baseAddress, PR_NetAddrToString(&address, base, UInt32(buffer.count)) == PR_SUCCESS else { return "?" }
            base[buffer.count - 1] = 0
            return String(cString: base)
        }
    }

    /// Resolves `host` to addresses; an IP literal resolves to itself without a lookup.
    ///
    /// The lookup blocks, so it runs on the ``BlockingPool``.
    static func resolve(_ host: String, port: UInt16, services: RuntimeServices) async throws -> [NetworkAddress] {
        if let literal = NetworkAddress(literal: host, port: port) { return [literal] }
        return try await services.blockingPool.run {
            let operation = "resolving \(host)"
            guard let info = PR_GetAddrInfoByName(host, UInt16(PR_AF_UNSPEC), Int32(PR_AI_ADDRCONFIG)) else {
                let error = TLSError.fromLastNSSError(operation)
                throw TLSError(kind: .nameResolution, operation: operation, nssCode: error.nssCode, nssName: error.nssName, message: error.message)
            }
            defer { PR_FreeAddrInfo(info) }
            var addresses: [NetworkAddress] = []
            var iterator: UnsafeMutableRawPointer? = nil
            repeat {
                var address = PRNetAddr()
                iterator = PR_EnumerateAddrInfo(iterator, info, port, &address)
                if iterator != nil { addresses.append(NetworkAddress(raw: address)) }
            } while iterator != nil
            guard !addresses.isEmpty else {
                throw TLSError(kind: .nameResolution, operation: operation, message: "no addresses")
            }
            return addresses
        }
    }
}
