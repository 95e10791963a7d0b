/// What a handshake negotiated.
public struct TLSConnectionInfo: Sendable, Hashable {
    /// The protocol version, for example ``TLSVersion/tls13``.
    public var protocolVersion: TLSVersion
    /// The IANA name of the cipher suite, for example `TLS_AES_128_GCM_SHA256`.
    public var cipherSuite: String
    /// The ALPN protocol both sides agreed on, if any.
    public var applicationProtocol: String?
    /// The server name (SNI): what the client asked for, on either side.
    public var serverName: String?
    /// Whether the session was resumed rather than fully negotiated.
    public var resumed: Bool
    /// The peer's certificate chain as it sent it, leaf first. Empty when the
    /// peer sent none (a client that was not asked, for example).
    public var peerCertificates: [TLSCertificate]
    /// On a client, what the OCSP response that the server stapled says of
    /// its certificate; nil when it stapled none, on a resumed session (no
    /// certificate was sent), and on a server.
    public var stapledOCSPResponse: OCSPStatus?
    /// Whether the ClientHello was encrypted (Encrypted Client Hello) and
    /// the server decrypted it: the server name went over the network
    /// hidden. Both sides know.
    public var encryptedClientHelloAccepted: Bool = false
    /// Whether the server accepted the client's early data (TLS 1.3 0-RTT).
    /// Both sides know.
    public var earlyDataAccepted: Bool = false

    /// The subject of the peer's leaf certificate, if it sent one.
    public var peerSubject: String? { peerCertificates.first?.subject }
}

/// One completed handshake: the initial one, a renegotiation, a TLS 1.3
/// post-handshake authentication, or a key update this side sent.
public struct HandshakeEvent: Sendable, Hashable {
    /// Which handshake of the connection this was.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        fileprivate let raw: String
        public var description: String { raw }
        /// The first handshake of the connection.
        public static let initial = Kind(raw: "initial")
        /// A TLS 1.2 renegotiation.
        public static let renegotiation = Kind(raw: "renegotiation")
        /// A TLS 1.3 KeyUpdate that this side sent.
        public static let keyUpdate = Kind(raw: "keyUpdate")
        /// A TLS 1.3 post-handshake authentication that this server asked
        /// for and the client answered (with a certificate or without one).
        public static let postHandshakeAuthentication = Kind(raw: "postHandshakeAuthentication")
    }

    /// Which handshake completed.
    public var kind: Kind
    /// 1 for the initial handshake, then counting up.
    public var sequenceNumber: Int
    /// The connection's parameters right after this handshake.
    public var info: TLSConnectionInfo
}
