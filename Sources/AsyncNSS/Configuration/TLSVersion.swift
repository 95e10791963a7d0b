/// A TLS protocol version.
public struct TLSVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The version number on the wire, for example `0x0304` for TLS 1.3.
    public let wireValue: UInt16

    /// The version with this number on the wire.
    public init(wireValue: UInt16) { self.wireValue = wireValue }

    /// TLS 1.2. The default minimum.
    public static let tls12 = TLSVersion(wireValue: 0x0303)
    /// TLS 1.3. The default maximum.
    public static let tls13 = TLSVersion(wireValue: 0x0304)

    public static func < (lhs: TLSVersion, rhs: TLSVersion) -> Bool { lhs.wireValue < rhs.wireValue }

    /// `TLSv1.2`, `TLSv1.3`, as OpenSSL and curl print it.
    public var description: String {
        switch wireValue {
        case 0x0300: "SSLv3"
        case 0x0301...0x0309: "TLSv1.\(wireValue - 0x0301)".replacingZero()
        default: "TLS(0x\(String(wireValue, radix: 16)))"
        }
    }

    /// Parses `1.2`, `1.3`, `tls1.2`, `TLSv1.3`.
    public init?(_ text: String) {
        let lowered = text.lowercased()
        let number = lowered.hasPrefix("tlsv") ? String(lowered.dropFirst(4)) : lowered.hasPrefix("tls") ? String(lowered.dropFirst(3)) : lowered
        switch number {
        case "1.2": self = .tls12
        case "1.3": self = .tls13
        default: return nil
        }
    }
}

private extension String {
    /// "TLSv1.0" is spelled "TLSv1" by convention.
    func replacingZero() -> String { self == "TLSv1.0" ? "TLSv1" : self }
}
