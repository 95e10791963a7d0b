/// Who may start a TLS 1.2 renegotiation on a connection.
///
/// Only the safe kind (RFC 5746) ever happens: a peer that does not support
/// the renegotiation_info extension is refused whatever the policy says.
/// TLS 1.3 has no renegotiation; see ``TLSConnection/updateKeys(requestPeerUpdate:)``
/// and ``TLSConnection/requestClientCertificate()``.
public struct RenegotiationPolicy: Sendable, Hashable, CustomStringConvertible {
    enum Rule: Sendable, Hashable {
        case automatic
        case never
        case localOnly
        case localAndPeer
    }

    let rule: Rule

    /// A server refuses renegotiations its clients start (a denial-of-service
    /// guard) and may start its own; a client follows the server's and may
    /// start its own. The default.
    public static let automatic = RenegotiationPolicy(rule: .automatic)
    /// No renegotiation at all: ``TLSConnection/rehandshake(flushSession:)``
    /// throws, and a peer's request is answered with a no_renegotiation warning.
    public static let never = RenegotiationPolicy(rule: .never)
    /// This side may renegotiate; requests from the peer are refused.
    public static let localOnly = RenegotiationPolicy(rule: .localOnly)
    /// Either side may start a renegotiation.
    public static let localAndPeer = RenegotiationPolicy(rule: .localAndPeer)

    public var description: String {
        switch rule {
        case .automatic: "automatic"
        case .never: "never"
        case .localOnly: "localOnly"
        case .localAndPeer: "localAndPeer"
        }
    }

    /// Whether this side may call ``TLSConnection/rehandshake(flushSession:)``.
    var allowsLocal: Bool { rule != .never }

    /// Whether a renegotiation the peer starts is accepted, for a side of `role`.
    func acceptsPeer(as role: TLSRole) -> Bool {
        switch rule {
        case .automatic: role == .client
        case .never, .localOnly: false
        case .localAndPeer: true
        }
    }
}
