/// What an OCSP response says about one certificate, once checked: its
/// signature against the certificate's issuer, its time window, and that it
/// names this certificate.
public enum OCSPStatus: Sendable, Hashable, CustomStringConvertible {
    /// The responder vouches that the certificate is not revoked.
    case good
    /// The responder says the certificate is revoked.
    case revoked
    /// The responder does not know the certificate.
    case unknown
    /// The response was good once, but its `nextUpdate` has passed.
    case expired
    /// The response cannot be used: malformed, not signed by the issuer or a
    /// responder it named, about another certificate, or an error status.
    /// `reason` is NSS's error name and text.
    case invalid(reason: String)

    public var description: String {
        switch self {
        case .good: "good"
        case .revoked: "revoked"
        case .unknown: "unknown"
        case .expired: "expired"
        case .invalid(let reason): "invalid (\(reason))"
        }
    }
}
