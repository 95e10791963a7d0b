internal import CNSS

/// Application code that decides about the peer's certificate chain, after
/// the checks of ``TLSConfiguration/trust`` have run.
///
/// It sees their outcome in ``PeerCertificateVerification/builtInFailure`` and
/// may override it (accept a pinned self-signed certificate) or extend it
/// (reject a chain the trust accepted, for a pin that does not match).
public enum CertificateVerifier: Sendable {
    /// Runs inside NSS's callback on the thread that drives the handshake:
    /// return quickly, never block. Clients and servers.
    case synchronous(@Sendable (PeerCertificateVerification) -> CertificateVerdict)
    /// Runs in a task of its own while the handshake waits, so a slow check
    /// (a network lookup, say) holds up no other connection. The task is
    /// cancelled if the connection goes away. Clients only: NSS cannot wait
    /// for a verdict on a server.
    case asynchronous(@Sendable (PeerCertificateVerification) async -> CertificateVerdict)
}

/// What a ``CertificateVerifier`` is asked about.
public struct PeerCertificateVerification: Sendable {
    /// The chain as the peer sent it, leaf first.
    public var certificates: [TLSCertificate]
    /// On a client, the name the server's certificate must carry.
    public var expectedServerName: String?
    /// Why the configured trust refused the chain, or `nil` if it accepted it.
    public var builtInFailure: TLSError?
    /// Whether this side is the server (verifying a client certificate).
    public var isServer: Bool
}

/// A ``CertificateVerifier``'s decision.
public enum CertificateVerdict: Sendable, Hashable {
    /// The certificate is good: the handshake goes on.
    case accept
    /// Fail the handshake; the peer gets the alert of the reason.
    case reject(CertificateRejection)
}

/// Why a certificate was refused; each reason sends its own TLS alert.
public struct CertificateRejection: Sendable, Hashable, CustomStringConvertible {
    let code: Int32
    let name: String

    public var description: String { name }

    /// A `bad_certificate` alert.
    public static let badCertificate = CertificateRejection(code: SSL_ERROR_BAD_CERTIFICATE.rawValue, name: "SSL_ERROR_BAD_CERTIFICATE")
    /// An `unknown_ca` alert.
    public static let unknownIssuer = CertificateRejection(code: SEC_ERROR_UNKNOWN_ISSUER.rawValue, name: "SEC_ERROR_UNKNOWN_ISSUER")
    /// A `certificate_expired` alert.
    public static let expired = CertificateRejection(code: SEC_ERROR_EXPIRED_CERTIFICATE.rawValue, name: "SEC_ERROR_EXPIRED_CERTIFICATE")
    /// A `certificate_revoked` alert.
    public static let revoked = CertificateRejection(code: SEC_ERROR_REVOKED_CERTIFICATE.rawValue, name: "SEC_ERROR_REVOKED_CERTIFICATE")
}

/// What a server asks for when it wants a client certificate.
public struct ClientCertificateRequest: Sendable {
    /// The distinguished names of the CAs the server accepts, most
    /// significant RDN last as NSS prints them; empty when it named none.
    public var acceptableIssuers: [String]
    /// The name the client connected to.
    public var serverName: String?
}
