/// The parts of a ``TLSConfiguration`` that a connection consults after its
/// initial handshake: rehandshakes and certificate requests.
///
/// A class, so that every connection of a listener shares its setup's one
/// instance: a copy in each connection would cost it about 190 bytes.
final class ConnectionSettings: Sendable {
    let role: TLSRole
    /// The deadline of every handshake, the initial one and later ones.
    let handshakeTimeout: Duration
    let idleTimeout: Duration?
    let renegotiation: RenegotiationPolicy
    /// What a server asked for on the initial handshake; restored after
    /// ``TLSConnection/requestClientCertificate()``.
    let clientCertificatePolicy: ClientCertificatePolicy
    /// What peer certificates are verified against.
    let trust: TLSTrust
    let certificateVerifier: CertificateVerifier?
    let revocation: RevocationPolicy
    /// Whether a client offers Encrypted Client Hello.
    let encryptsClientHello: Bool
    /// Whether a server accepts early data (0-RTT), and so may hand a
    /// connection over before its handshake completed.
    let acceptsEarlyData: Bool
    /// Whether a server has keys to decrypt Encrypted Client Hellos.
    let decryptsClientHello: Bool
    /// A server's default identity, which its SNI hook sets up for an
    /// encrypted ClientHello whose name has no identity of its own.
    let defaultIdentity: TLSIdentity?
    let serverNameIdentities: ServerNameIdentities
    let serverNameSelector: (@Sendable (String) -> TLSIdentity?)?
    let unknownServerName: UnknownServerNamePolicy
    let clientIdentityChooser: (@Sendable (ClientCertificateRequest) async -> TLSIdentity?)?
    /// Where TLS 1.3 secrets go, for debugging; nil almost always.
    let keyLog: TLSKeyLog?

    init(_ configuration: TLSConfiguration, role: TLSRole) {
        self.role = role
        self.handshakeTimeout = configuration.handshakeTimeout
        self.idleTimeout = configuration.idleTimeout
        self.renegotiation = configuration.renegotiation
        self.clientCertificatePolicy = configuration.clientCertificatePolicy
        self.trust = configuration.trust
        self.certificateVerifier = configuration.certificateVerifier
        self.revocation = configuration.revocation
        self.encryptsClientHello = configuration.encryptedClientHelloConfigList != nil
        self.decryptsClientHello = role == .server && configuration.encryptedClientHelloKeys != nil
        self.acceptsEarlyData = role == .server && configuration.earlyData.isOn && configuration.clientCertificatePolicy == .none
        self.defaultIdentity = role == .server ? configuration.identity : nil
        self.serverNameIdentities = ServerNameIdentities(configuration.serverNameIdentities)
        self.serverNameSelector = configuration.serverNameSelector
        self.unknownServerName = configuration.unknownServerName
        self.clientIdentityChooser = configuration.clientIdentityChooser
        self.keyLog = configuration.keyLog
    }
}
