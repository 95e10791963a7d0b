public import Logging

/// Everything that shapes a TLS connection: identity, trust, versions, ALPN
/// and limits. A `Sendable` value: build it once, share it freely.
///
/// ```swift
/// let server = TLSConfiguration.makeServerConfiguration(identity: try await .selfSigned())
/// var client = TLSConfiguration.makeClientConfiguration()   // system roots, host name checked
/// client.applicationProtocols = ["h2", "http/1.1"]
/// ```
public struct TLSConfiguration: Sendable {
    /// The certificate a server presents, or a client presents when asked.
    public var identity: TLSIdentity?
    /// What a client verifies the server against; what a server verifies
    /// client certificates against.
    public var trust: TLSTrust
    /// The lowest version offered or accepted. TLS 1.2 by default.
    public var minimumVersion: TLSVersion = .tls12
    /// The highest version offered or accepted. TLS 1.3 by default.
    public var maximumVersion: TLSVersion = .tls13
    /// The TLS 1.2 cipher suites offered or accepted: by default ECDHE or
    /// DHE with an AEAD cipher (Mozilla's intermediate profile). TLS 1.3's
    /// suites are always on.
    public var cipherSuites: TLSCipherSuites = .mozillaIntermediate
    /// ALPN protocol names, most preferred first (for example `["h2", "http/1.1"]`).
    public var applicationProtocols: [String] = []
    /// The name a client sends as SNI and checks the certificate against.
    /// `nil` uses the host given to ``TLSConnection/connect(host:port:configuration:logger:metrics:)``.
    public var serverName: String?
    /// How long the initial handshake may take before the connection is closed.
    public var handshakeTimeout: Duration = .seconds(10)
    /// Application code that has the last word on the peer's certificate,
    /// after the checks of ``trust``. ``CertificateVerifier/asynchronous(_:)``
    /// works on clients only.
    public var certificateVerifier: CertificateVerifier?
    /// On a client, chooses the certificate to send when a server asks,
    /// from the CA names in its request; `nil` sends none. Takes precedence
    /// over ``identity`` for that purpose.
    public var clientIdentityChooser: (@Sendable (ClientCertificateRequest) async -> TLSIdentity?)?
    /// Whether the peer's certificate is checked for revocation: off by
    /// default, or one of the hard-failing policies of ``RevocationPolicy``
    /// (a stapled OCSP response, an OCSP responder, CRLs).
    public var revocation: RevocationPolicy = .off
    /// Who may start a TLS 1.2 renegotiation. By default a server refuses
    /// the ones its clients start, and a client follows its server's.
    public var renegotiation: RenegotiationPolicy = .automatic
    /// How many connections a listener holds at once, from accept to close
    /// (connections waiting in the listener's sequence count). At the limit
    /// it stops accepting, and new clients wait in the kernel's backlog until
    /// a connection closes.
    public var maximumConnections: Int = 10_000
    /// Writes the TLS 1.3 secrets of every connection to a key log file
    /// that Wireshark can decrypt captures with. For debugging only; off
    /// (nil) by default. See ``TLSKeyLog``.
    public var keyLog: TLSKeyLog?
    /// Whether a server accepts TLS 1.3 early data (0-RTT) on resumed
    /// sessions; off by default. See ``EarlyDataPolicy`` for what it risks,
    /// and ``TLSConnection/connect(host:port:configuration:earlyData:logger:metrics:)``
    /// for sending it.
    public var earlyData: EarlyDataPolicy = .off
    /// On a server, the keys that let clients encrypt their ClientHello
    /// (Encrypted Client Hello), hiding the name they ask for from the
    /// network. TLS 1.3 only; nil (the default) turns ECH off.
    public var encryptedClientHelloKeys: EncryptedClientHelloKeys?
    /// On a client, the server's ECHConfigList (from its DNS HTTPS record's
    /// `ech=`, or ``EncryptedClientHelloKeys/configList``): the ClientHello's
    /// real server name is encrypted, and only the configuration's public
    /// name goes in the clear. A server that rejects the configuration but
    /// sends a current one gets one more try with it. The handshake fails
    /// unless the server accepts ECH; nil (the default) sends none.
    public var encryptedClientHelloConfigList: [UInt8]?
    /// Whether a listener reads a PROXY protocol header (from HAProxy or a
    /// load balancer) before TLS on each connection. Off by default.
    public var proxyProtocol: ProxyProtocolPolicy = .off
    /// Closes a connection on which nothing was read or written for this
    /// long; `nil` (the default) never does.
    public var idleTimeout: Duration?
    /// Whether a server asks connecting clients for a certificate.
    public var clientCertificatePolicy: ClientCertificatePolicy = .none
    /// Identities a server presents by the name a client asks for (SNI).
    /// Keys are host names, matched without regard to case; `*.example.com`
    /// matches one label. Other names get ``identity``, or an alert (see
    /// ``unknownServerName``). A connection that asks for a name presents
    /// that name's identity alone, whatever its key type: the server reads the
    /// ClientHello's name before NSS starts the handshake.
    public var serverNameIdentities: [String: TLSIdentity] = [:]
    /// Chooses the identity for a name that ``serverNameIdentities`` does not
    /// know; `nil` leaves it to ``unknownServerName``. It runs when the
    /// ClientHello arrives, on the connection's task: return quickly (from a
    /// dictionary or a cache), never block.
    public var serverNameSelector: (@Sendable (String) -> TLSIdentity?)?
    /// What a server does when a client asks for a name that
    /// ``serverNameIdentities`` (and ``serverNameSelector``) do not know.
    public var unknownServerName: UnknownServerNamePolicy = .useDefaultIdentity
    /// Where connections made with this configuration log, each with its own
    /// metadata (see ``TLSConnection/logger``). `nil` (the default): a
    /// listener's connections log to the listener's logger; a client logs
    /// nothing unless `connect` is given a logger.
    public var logger: Logger?

    /// A server configuration: presents `identity`, asks for no client certificate.
    public static func makeServerConfiguration(identity: TLSIdentity) -> TLSConfiguration {
        TLSConfiguration(identity: identity, trust: .systemRoots)
    }

    /// A client configuration that verifies the server's chain against `trust`
    /// and its certificate against the host name.
    public static func makeClientConfiguration(trust: TLSTrust = .systemRoots) -> TLSConfiguration {
        TLSConfiguration(identity: nil, trust: trust)
    }

    /// A configuration with this identity and trust and the defaults for the
    /// rest; ``makeServerConfiguration(identity:)`` and
    /// ``makeClientConfiguration(trust:)`` say what each role needs.
    public init(identity: TLSIdentity?, trust: TLSTrust) {
        self.identity = identity
        self.trust = trust
    }

    /// Checks the configuration and the port before a connect or a bind, and
    /// returns the port and the running runtime.
    func prepare(port: Int, as role: TLSRole, _ operation: String) throws -> (UInt16, RuntimeServices) {
        let port = try NetworkAddress.port(port, operation)
        try validate(as: role, operation)
        return (port, try Runtime.shared.services())
    }

    /// Checks the values that do not depend on the peer.
    func validate(as role: TLSRole, _ operation: String) throws {
        guard minimumVersion <= maximumVersion else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "the minimum version \(minimumVersion) is above the maximum \(maximumVersion)")
        }
        guard minimumVersion >= .tls12, maximumVersion <= .tls13 else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "only TLS 1.2 and TLS 1.3 are supported")
        }
        guard maximumConnections >= 1 else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "maximumConnections must be at least 1")
        }
        if let idleTimeout, idleTimeout <= .zero {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "the idle timeout must be positive")
        }
        guard handshakeTimeout > .zero else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "the handshake timeout must be positive")
        }
        if role == .client, proxyProtocol != .off {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "the PROXY protocol is for listeners; a client sends no header")
        }
        if role == .client, earlyData.isOn {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "earlyData is a server's policy; a client sends early data with connect(..., earlyData:)")
        }
        if earlyData.isOn {
            guard earlyData.maximumSize <= 1 << 24, earlyData.antiReplayWindow >= .milliseconds(1) else {
                throw TLSError(kind: .invalidConfiguration, operation: operation, message: "early data needs a maximum size of at most 16 MiB and an anti-replay window of at least 1 ms")
            }
        }
        if role == .server, encryptedClientHelloConfigList != nil {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "encryptedClientHelloConfigList is for clients; a server uses encryptedClientHelloKeys")
        }
        if role == .client, encryptedClientHelloKeys != nil {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "encryptedClientHelloKeys are for servers; a client uses encryptedClientHelloConfigList")
        }
        if role == .client, let list = encryptedClientHelloConfigList {
            guard ECHConfigList(list) != nil else {
                throw TLSError(kind: .invalidConfiguration, operation: operation, message: "encryptedClientHelloConfigList is not an ECHConfigList of version 0xfe0d (base64-decode the ech= value of the DNS HTTPS record)")
            }
            guard maximumVersion >= .tls13 else {
                throw TLSError(kind: .invalidConfiguration, operation: operation, message: "Encrypted Client Hello needs TLS 1.3; the maximum version is \(maximumVersion)")
            }
        }
        if role == .server, !revocation.worksOnServers {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "RevocationPolicy.\(revocation) is for clients: clients staple no OCSP response, and NSS cannot wait on a server for a responder; use .crl(files:) to check client certificates")
        }
        if case .off = revocation.mode {} else if !trust.verifiesPeer {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "RevocationPolicy.\(revocation) needs a trust that verifies the peer, not TLSTrust.insecureNoVerification")
        }
        if role == .server, case .asynchronous = certificateVerifier {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "NSS cannot wait for an asynchronous certificate verdict on a server (SSL_ERROR_FEATURE_NOT_SUPPORTED_FOR_SERVERS); use CertificateVerifier.synchronous")
        }
        for name in applicationProtocols where name.utf8.isEmpty || name.utf8.count > 255 {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "ALPN protocol names must be 1 to 255 bytes long: \"\(name)\"")
        }
    }
}

/// Whether a server asks clients for a certificate during the initial handshake.
public enum ClientCertificatePolicy: Sendable, Hashable {
    /// Do not ask.
    case none
    /// Ask; a client without one may still connect. A certificate that is
    /// sent must verify against the configuration's ``TLSConfiguration/trust``.
    case request
    /// Ask, and fail the handshake without a valid certificate.
    case require
}

/// What a server does when a client names a host it has no identity for.
public enum UnknownServerNamePolicy: Sendable, Hashable {
    /// Present ``TLSConfiguration/identity``.
    case useDefaultIdentity
    /// Fail the handshake with an `unrecognized_name` alert.
    case reject
}
