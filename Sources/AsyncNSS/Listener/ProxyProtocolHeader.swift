#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a PROXY protocol header said about the connection it came before:
/// the address of the client that a proxy or load balancer (HAProxy, a cloud
/// network load balancer) accepted, and what else the proxy passed on.
///
/// A listener whose configuration has ``TLSConfiguration/proxyProtocol`` set
/// to ``ProxyProtocolPolicy/required`` reads one header, version 1 (text) or
/// 2 (binary), from each new connection before TLS starts, and the
/// connection's ``TLSConnection/remoteAddress`` is then the client's address.
/// The format is HAProxy's "The PROXY protocol", versions 1 and 2.
///
/// This file stands alone (it is compiled into the fuzz target too).
public struct ProxyProtocolHeader: Sendable, Hashable, CustomStringConvertible {
    /// The header's format.
    public enum Version: Sendable, Hashable {
        /// A text line (`PROXY TCP4 ...`).
        case v1
        /// A binary block, with TLVs.
        case v2
    }

    /// An IP address and a TCP port, as the header gave them.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// `192.0.2.1` or `2001:db8::1`, without brackets.
        public var host: String
        /// The TCP port.
        public var port: UInt16

        /// `192.0.2.1:443` or `[2001:db8::1]:443`.
        public var description: String {
            host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    /// A version 2 TLV: a type and its bytes.
    public struct Field: Sendable, Hashable {
        /// The TLV's type, one of the constants below or another.
        public var type: UInt8
        /// The TLV's bytes.
        public var value: [UInt8]

        /// The application protocol the client negotiated with the proxy.
        public static let alpn: UInt8 = 0x01
        /// The host name the client asked the proxy for (its SNI name).
        public static let authority: UInt8 = 0x02
        /// A CRC-32C of the header (not checked).
        public static let crc32c: UInt8 = 0x03
        /// Padding, to be ignored.
        public static let noop: UInt8 = 0x04
        /// An opaque ID the proxy gave the connection, at most 128 bytes.
        public static let uniqueID: UInt8 = 0x05
        /// What the proxy's own TLS negotiated with the client.
        public static let ssl: UInt8 = 0x20
        /// The network namespace the proxy accepted the connection in.
        public static let networkNamespace: UInt8 = 0x30
    }

    /// Version 1 or 2.
    public var version: Version
    /// The client's address and port; nil when the header carries none: a
    /// version 2 LOCAL command (the proxy's own health check), a version 1
    /// `UNKNOWN`, or an address family other than IPv4 and IPv6.
    public var source: Endpoint?
    /// The address and port the client connected to, at the proxy.
    public var destination: Endpoint?
    /// The version 2 TLVs, in order; empty for version 1.
    public var fields: [Field]

    /// The authority TLV: the host name the client asked the proxy for.
    public var authority: String? {
        fields.first { $0.type == Field.authority }.map { String(decoding: $0.value, as: UTF8.self) }
    }

    /// The unique-ID TLV.
    public var uniqueID: [UInt8]? {
        fields.first { $0.type == Field.uniqueID }?.value
    }

    /// The ALPN TLV, as a string.
    public var applicationProtocol: String? {
        fields.first { $0.type == Field.alpn }.map { String(decoding: $0.value, as: UTF8.self) }
    }

    /// `PROXY v2 203.0.113.7:50312 -> 192.0.2.1:443`.
    public var description: String {
        let from = source.map(\.description) ?? "unknown"
        let to = destination.map(\.description) ?? "unknown"
        return "PROXY \(version == .v1 ? "v1" : "v2") \(from) -> \(to)"
    }

    /// The most bytes a header may take, version 2 with its TLVs (a version
    /// 1 line is at most 107).
    public static let maximumLength = 536
    static let maximumLineLength = 107
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    static let v1Signature: [UInt8] = Array("PROXY ".utf8)

    /// What ``parse(_:)`` found at the start of a stream.
    public enum Parse: Sendable, Hashable {
        /// The bytes so far begin a header, or may: read more.
        case needMore
        /// A header of `length` bytes; the stream's own data follows it.
        case complete(ProxyProtocolHeader, length: Int)
        /// Not a valid header: the reason.
        case invalid(String)
    }

    /// Parses the header at the start of `bytes`, the first bytes of a
    /// connection. Never reads past ``maximumLength`` bytes.
    public static func parse(_ bytes: [UInt8]) -> Parse {
        if startsLike(v2Signature, bytes) {
            return bytes.count < v2Signature.count ? .needMore : parseV2(bytes)
        }
        if startsLike(v1Signature, bytes) {
            return bytes.count < v1Signature.count ? .needMore : parseV1(bytes)
        }
        return .invalid("the connection did not start with a PROXY protocol header")
    }

    /// Whether `bytes` and `signature` agree on their common length.
    private static func startsLike(_ signature: [UInt8], _ bytes: [UInt8]) -> Bool {
        zip(signature, bytes).allSatisfy { $0 == $1 }
    }

    // MARK: Version 1

    private static func parseV1(_ bytes: [UInt8]) -> Parse {
        let window = bytes.prefix(maximumLineLength)
        let cr = window.firstIndex(of: 0x0D)
        let line = window[..<(cr ?? window.endIndex)]
        guard line.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return .invalid("the PROXY v1 line holds bytes that are not printable ASCII") }
        guard let cr else {
            return bytes.count < maximumLineLength ? .needMore : .invalid("the PROXY v1 line is longer than \(maximumLineLength) bytes")
        }
        guard cr + 2 <= maximumLineLength else { return .invalid("the PROXY v1 line is longer than \(maximumLineLength) bytes") }
        guard cr + 1 < bytes.count else { return .needMore }
        guard bytes[cr + 1] == 0x0A else { return .invalid("the PROXY v1 line has a carriage return without a line feed") }
        let words = line.split(separator: 0x20, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        let length = cr + 2
        guard words.count >= 2 else { return .invalid("the PROXY v1 line names no protocol") }
        switch words[1] {
        case "UNKNOWN":
            // The rest of the line is to be ignored.
            return .complete(ProxyProtocolHeader(version: .v1, source: nil, destination: nil, fields: []), length: length)
        case "TCP4", "TCP6":
            let family = words[1] == "TCP4" ? AF_INET : AF_INET6
            guard words.count == 6 else { return .invalid("the PROXY v1 line has \(words.count) words; TCP4 and TCP6 lines have 6") }
            guard let sourceHost = canonicalAddress(words[2], family: family),
                  let destinationHost = canonicalAddress(words[3], family: family) else {
                return .invalid("the PROXY v1 line's addresses are not \(words[1] == "TCP4" ? "IPv4" : "IPv6") addresses")
            }
            guard let sourcePort = port(words[4]), let destinationPort = port(words[5]) else {
                return .invalid("the PROXY v1 line's ports are not numbers from 0 to 65535")
            }
            return .complete(ProxyProtocolHeader(
                version: .v1,
                source: Endpoint(host: sourceHost, port: sourcePort),
                destination: Endpoint(host: destinationHost, port: destinationPort),
                fields: []
            ), length: length)
        default:
            return .invalid("the PROXY v1 line's protocol is neither TCP4, TCP6 nor UNKNOWN")
        }
    }

    /// A decimal port: 1 to 5 digits, no sign, at most 65535.
    private static func port(_ text: String) -> UInt16? {
        guard (1...5).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return UInt16(text)
    }

    /// The address written canonically, or nil when `text` is not one of `family`.
    private static func canonicalAddress(_ text: String, family: Int32) -> String? {
        var storage = [UInt8](repeating: 0, count: 16)
        let parsed = text.withCString { inet_pton(family, $0, &storage) }
        guard parsed == 1 else { return nil }
        return addressText(storage, family: family)
    }

    private static func addressText(_ bytes: [UInt8], family: Int32) -> String? {
        var text = [CChar](repeating: 0, count: 64)
        let written = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &text, socklen_t(text.count))
        }
        guard written != nil else { return nil }
        let length = text.firstIndex(of: 0) ?? text.count
        return String(decoding: text[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Version 2

    private static func parseV2(_ bytes: [UInt8]) -> Parse {
        guard bytes.count >= 16 else { return .needMore }
        let versionAndCommand = bytes[12]
        guard versionAndCommand >> 4 == 2 else { return .invalid("the PROXY v2 header has version \(versionAndCommand >> 4)") }
        let command = versionAndCommand & 0x0F
        guard command <= 1 else { return .invalid("the PROXY v2 header has command \(command), neither LOCAL nor PROXY") }
        let family = bytes[13] >> 4
        let transport = bytes[13] & 0x0F
        guard family <= 3, transport <= 2 else { return .invalid("the PROXY v2 header has address family \(family) and protocol \(transport)") }
        let bodyLength = Int(bytes[14]) << 8 | Int(bytes[15])
        let length = 16 + bodyLength
        guard length <= maximumLength else { return .invalid("the PROXY v2 header is \(length) bytes; at most \(maximumLength) are accepted") }
        guard bytes.count >= length else { return .needMore }
        let body = Array(bytes[16..<length])

        let addressLength: Int
        switch family {
        case 1: addressLength = 12
        case 2: addressLength = 36
        case 3: addressLength = 216
        default: addressLength = 0
        }
        guard body.count >= addressLength else {
            return .invalid("the PROXY v2 header's \(body.count) bytes are too few for its addresses (\(addressLength))")
        }
        var source: Endpoint?
        var destination: Endpoint?
        // LOCAL: the proxy's own connection; its addresses are to be ignored.
        if command == 1, family == 1 || family == 2 {
            let size = family == 1 ? 4 : 16
            let inet = family == 1 ? AF_INET : AF_INET6
            guard let sourceHost = addressText(Array(body[0..<size]), family: inet),
                  let destinationHost = addressText(Array(body[size..<2 * size]), family: inet) else {
                return .invalid("the PROXY v2 header's addresses cannot be read")
            }
            let ports = 2 * size
            source = Endpoint(host: sourceHost, port: UInt16(body[ports]) << 8 | UInt16(body[ports + 1]))
            destination = Endpoint(host: destinationHost, port: UInt16(body[ports + 2]) << 8 | UInt16(body[ports + 3]))
        }
        guard let fields = fields(body[addressLength...]) else {
            return .invalid("the PROXY v2 header's TLVs do not fill its length exactly")
        }
        if let uniqueID = fields.first(where: { $0.type == Field.uniqueID }), uniqueID.value.count > 128 {
            return .invalid("the PROXY v2 header's unique ID is \(uniqueID.value.count) bytes; at most 128 are allowed")
        }
        return .complete(ProxyProtocolHeader(version: .v2, source: source, destination: destination, fields: fields), length: length)
    }

    /// The TLVs of `bytes`, or nil when one runs past the end.
    private static func fields(_ bytes: ArraySlice<UInt8>) -> [Field]? {
        var fields: [Field] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            guard bytes.endIndex - index >= 3 else { return nil }
            let type = bytes[index]
            let length = Int(bytes[index + 1]) << 8 | Int(bytes[index + 2])
            let start = index + 3
            guard bytes.endIndex - start >= length else { return nil }
            fields.append(Field(type: type, value: Array(bytes[start..<start + length])))
            index = start + length
        }
        return fields
    }
}
