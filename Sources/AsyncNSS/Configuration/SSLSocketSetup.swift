internal import CNSS

/// Applies a ``TLSConfiguration`` to an NSS SSL socket.
enum SSLSocketSetup {
    /// Everything a socket needs for its role: the common options, then the
    /// server's identity and policies, or the client's server name.
    static func apply(_ configuration: TLSConfiguration, to fd: UnsafeMutablePointer<PRFileDesc>, as role: TLSRole, serverName: String?, operation: String) throws {
        try applyCommon(configuration, to: fd, isServer: role == .server, operation: operation)
        try setRenegotiation(acceptingPeer: configuration.renegotiation.acceptsPeer(as: role), on: fd, operation)
        switch role {
        case .server:
            try applyServer(configuration, to: fd, operation: operation)
        case .client:
            try applyClient(configuration, serverName: serverName ?? "", to: fd, operation: operation)
        }
    }

    /// Options for both roles: versions, renegotiation, cipher suites, ALPN.
    private static func applyCommon(_ configuration: TLSConfiguration, to fd: UnsafeMutablePointer<PRFileDesc>, isServer: Bool, operation: String) throws {
        try setOption(fd, SSL_SECURITY, true, operation)
        try setOption(fd, SSL_HANDSHAKE_AS_SERVER, isServer, operation)
        try setOption(fd, SSL_HANDSHAKE_AS_CLIENT, !isServer, operation)
        // Whatever the renegotiation policy, only the RFC 5746 kind: both
        // renegotiation modes used here (see setRenegotiation) refuse to
        // renegotiate with a peer that did not signal RFC 5746. A server
        // still accepts such a client's initial handshake, as OpenSSL, Go
        // and selfserv do; it never renegotiates with it. A client requires
        // the signal from its server.
        try setOption(fd, SSL_REQUIRE_SAFE_NEGOTIATION, !isServer, operation)
        try setOption(fd, SSL_ENABLE_FALSE_START, false, operation)
        try setOption(fd, SSL_NO_CACHE, false, operation)
        // SSL_NO_LOCKS stays off, although every call on a socket but the
        // loops' PR_Poll already runs under its SocketHandle's lock: NSS 3.87
        // then crashes at the first alert it sends (SSL3_SendAlert asks whether
        // it holds a lock that was never made; fixed in NSS 3.114, bug 1973925).
        // On NSS 3.123 it works, and saves about 10 µs per resumed TLS 1.2
        // connection on a lightly loaded server, nothing measurable on a busy
        // one (Benchmarks/RESULTS.md, 2026-12-07). Before turning it on there,
        // mind the cold loop: its PR_Poll may still hold a socket that the hot
        // loop reads, and ssl_Poll's SSL_DataPending would then read the
        // socket's buffers without the lock.

        var range = SSLVersionRange(min: configuration.minimumVersion.wireValue, max: configuration.maximumVersion.wireValue)
        guard SSL_VersionRangeSet(fd, &range) == SECSuccess else {
            throw TLSError.fromLastNSSError("\(operation): setting versions \(configuration.minimumVersion)–\(configuration.maximumVersion)")
        }
        try applyCipherSuites(configuration.cipherSuites, to: fd, operation)
        try setApplicationProtocols(configuration.applicationProtocols, on: fd, operation)
    }

    /// Imports the TCP socket `fd`, its read-ahead layer pushed, into NSS, as
    /// a copy of `model`'s configuration or with none. NSPR pushes the SSL
    /// layer in place, so that `fd`, which the socket's ``SocketHandle``
    /// holds, stays the top of the stack; anything else is an error.
    static func importInPlace(_ fd: UnsafeMutablePointer<PRFileDesc>, model: SocketHandle?, operation: @autoclosure () -> String) throws {
        let imported: UnsafeMutablePointer<PRFileDesc>?
        if let model {
            imported = try model.withFD(operation()) { model in SSL_ImportFD(model, fd) }
        } else {
            imported = SSL_ImportFD(nil, fd)
        }
        guard let imported else { throw TLSError.fromLastNSSError(operation()) }
        guard imported == fd else {
            throw TLSError(kind: .runtime, operation: operation(), message: "NSS returned a different descriptor for the TLS layer")
        }
    }

    /// The server identity, session tickets and the client-certificate policy.
    private static func applyServer(_ configuration: TLSConfiguration, to fd: UnsafeMutablePointer<PRFileDesc>, operation: String) throws {
        guard let identity = configuration.identity else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "a server needs an identity: TLSIdentity.pem, .database or .selfSigned")
        }
        // The server session cache and the ticket keys belong to the whole
        // process, and NSS resumes a TLS 1.3 ticket without asking whether the
        // session carried a client certificate. A listener that asks for client
        // certificates therefore never resumes: every client is verified
        // against this listener's own trust.
        let verifiesClients = configuration.clientCertificatePolicy != .none
        try setOption(fd, SSL_ENABLE_SESSION_TICKETS, !verifiesClients, operation)
        try setOption(fd, SSL_NO_CACHE, verifiesClients, operation)
        try configureIdentity(identity, on: fd, operation)
        try setClientCertificatePolicy(configuration.clientCertificatePolicy, on: fd, operation)
        try configuration.encryptedClientHelloKeys?.material.install(on: fd, operation)
        try setEarlyData(configuration.earlyData, acceptable: !verifiesClients, on: fd, operation)
    }

    /// Early data on a server: the option, the size tickets allow, and the
    /// runtime's anti-replay context for the window. A listener that asks
    /// for client certificates issues no tickets, so it never gets any.
    private static func setEarlyData(_ policy: EarlyDataPolicy, acceptable: Bool, on fd: UnsafeMutablePointer<PRFileDesc>, _ operation: String) throws {
        let accepts = policy.isOn && acceptable
        try setOption(fd, SSL_ENABLE_0RTT_DATA, accepts, operation)
        guard accepts else { return }
        let context = try Runtime.shared.services().antiReplay.context(window: policy.antiReplayWindow)
        guard cnss_set_anti_replay_context(fd, context) == SECSuccess,
              cnss_set_max_early_data_size(fd, UInt32(policy.maximumSize)) == SECSuccess else {
            throw TLSError.fromLastNSSError("\(operation): setting up early data")
        }
    }

    /// The certificate, key, chain and stapled OCSP response a server presents.
    static func configureIdentity(_ identity: TLSIdentity, on fd: UnsafeMutablePointer<PRFileDesc>, _ operation: String) throws {
        let material = identity.material
        let status = try material.certificate.withPointer(operation) { certificate in
            try material.privateKey.withPointer(operation) { key in
                PresentedChain.withServerCertData(material.sendsChainAsGiven ? material.chain : nil, ocspResponse: identity.ocspResponse) { data, size in
                    SSL_ConfigServerCert(fd, certificate, key, data, size)
                }
            }
        }
        guard status == SECSuccess else {
            throw TLSError.fromLastNSSError("\(operation): configuring the identity from \(material.source)")
        }
    }

    /// Whether the next full handshake asks the client for a certificate, and
    /// whether it fails without one.
    static func setClientCertificatePolicy(_ policy: ClientCertificatePolicy, on fd: UnsafeMutablePointer<PRFileDesc>, _ operation: String) throws {
        switch policy {
        case .none:
            try setOption(fd, SSL_REQUEST_CERTIFICATE, false, operation)
            try setOption(fd, SSL_REQUIRE_CERTIFICATE, Int32(SSL_REQUIRE_NEVER), operation)
        case .request:
            try setOption(fd, SSL_REQUEST_CERTIFICATE, true, operation)
            try setOption(fd, SSL_REQUIRE_CERTIFICATE, Int32(SSL_REQUIRE_NEVER), operation)
        case .require:
            try setOption(fd, SSL_REQUEST_CERTIFICATE, true, operation)
            try setOption(fd, SSL_REQUIRE_CERTIFICATE, Int32(SSL_REQUIRE_ALWAYS), operation)
        }
    }

    /// Whether NSS answers a renegotiation the peer starts, and then only the
    /// RFC 5746 kind (`SSL_RENEGOTIATE_REQUIRES_XTN`: with a peer that did
    /// not send renegotiation_info, neither side's renegotiation happens). A renegotiation this side starts is allowed for the
    /// moment of the call (see ``TLSConnection/rehandshake(flushSession:)``).
    static func setRenegotiation(acceptingPeer: Bool, on fd: UnsafeMutablePointer<PRFileDesc>, _ operation: String) throws {
        let mode = acceptingPeer ? SSL_RENEGOTIATE_REQUIRES_XTN : SSL_RENEGOTIATE_NEVER
        try setOption(fd, SSL_ENABLE_RENEGOTIATION, Int32(mode), operation)
    }

    /// The name a client sends as SNI and verifies the certificate against,
    /// and the session-cache partition of its configuration.
    private static func applyClient(_ configuration: TLSConfiguration, serverName: String, to fd: UnsafeMutablePointer<PRFileDesc>, operation: String) throws {
        guard SSL_SetURL(fd, serverName) == SECSuccess else {
            throw TLSError.fromLastNSSError("\(operation): setting the server name \(serverName)")
        }
        guard SSL_SetSockPeerID(fd, SessionCacheKey.peerID(for: configuration)) == SECSuccess else {
            throw TLSError.fromLastNSSError("\(operation): setting the session cache key")
        }
        if let list = configuration.encryptedClientHelloConfigList {
            let status = list.withUnsafeBufferPointer { list -> SECStatus in
                guard let base = list.baseAddress else { return SECFailure }
                return cnss_set_client_ech_configs(fd, base, UInt32(list.count))
            }
            guard status == SECSuccess else { throw TLSError.fromLastNSSError("\(operation): setting the ECH configuration") }
        }
        // Every client asks for a stapled OCSP response: it costs the server
        // nothing when it has none, and TLSConnectionInfo reports its status.
        try setOption(fd, SSL_ENABLE_OCSP_STAPLING, true, operation)
        // A client that can present a certificate offers TLS 1.3
        // post-handshake authentication, so a server may ask later.
        try setOption(fd, SSL_ENABLE_POST_HANDSHAKE_AUTH, configuration.identity != nil || configuration.clientIdentityChooser != nil, operation)
    }

    /// Enables the TLS 1.2 suites `suites` selects and TLS 1.3's, and turns
    /// off every other one, whatever NSS's defaults are.
    private static func applyCipherSuites(_ suites: TLSCipherSuites, to fd: UnsafeMutablePointer<PRFileDesc>, _ operation: String) throws {
        for suite in CipherSuiteTable.implemented {
            var nssDefault: PRBool = PR_FALSE
            _ = SSL_CipherPrefGetDefault(Int32(suite.number), &nssDefault)
            let enabled = suites.enables(suite, nssDefault: nssDefault != PR_FALSE)
            guard SSL_CipherPrefSet(fd, Int32(suite.number), enabled ? PR_TRUE : PR_FALSE) == SECSuccess else {
                throw TLSError.fromLastNSSError("\(operation): setting cipher suite \(suite.name)")
            }
        }
    }

    /// Sets the ALPN list. NSS moves the first entry to the end (gotcha 15),
    /// so the last preferred protocol is passed first.
    private static func setApplicationProtocols(_ protocols: [String], on fd: UnsafeMutablePointer<PRFileDesc>, _ operation: String) throws {
        guard let last = protocols.last else {
            try setOption(fd, SSL_ENABLE_ALPN, false, operation)
            return
        }
        try setOption(fd, SSL_ENABLE_ALPN, true, operation)
        let ordered = [last] + protocols.dropLast()
        var wire: [UInt8] = []
        for name in ordered {
            wire.append(UInt8(name.utf8.count))
            wire.append(contentsOf: name.utf8)
        }
        let status = wire.withUnsafeBufferPointer { SSL_SetNextProtoNego(fd, $0.baseAddress, UInt32($0.count)) }
        guard status == SECSuccess else {
            throw TLSError.fromLastNSSError("\(operation): setting ALPN \(protocols)")
        }
    }

    static func setOption(_ fd: UnsafeMutablePointer<PRFileDesc>, _ option: Int32, _ value: Bool, _ operation: String) throws {
        try setOption(fd, option, value ? PR_TRUE : PR_FALSE, operation)
    }

    static func setOption(_ fd: UnsafeMutablePointer<PRFileDesc>, _ option: Int32, _ value: Int32, _ operation: String) throws {
        guard SSL_OptionSet(fd, option, value) == SECSuccess else {
            throw TLSError.fromLastNSSError("\(operation): SSL option \(option)")
        }
    }
}

/// Turns a ``TLSTrust`` into what the authentication callback checks, loading
/// system roots or opening databases first (on the blocking pool).
enum TrustPreparation {
    /// What a connection of `role` verifies its peer with. A server that asks
    /// for no certificate on the initial handshake prepares its trust only
    /// when a connection asks for one (``TLSConnection/requestClientCertificate()``).
    static func verification(for configuration: TLSConfiguration, as role: TLSRole, services: RuntimeServices) async throws -> ConnectionCallbacks.Verification {
        if role == .server, configuration.clientCertificatePolicy == .none { return .deferred }
        return try await verification(for: configuration.trust, services: services)
    }

    static func verification(for trust: TLSTrust, services: RuntimeServices) async throws -> ConnectionCallbacks.Verification {
        switch trust.source {
        case .insecureNoVerification:
            return .none
        case .anchors(let anchors):
            return .anchors(anchors)
        case .systemRoots:
            try await services.blockingPool.run { try services.modules.loadSystemRoots() }
            return .nssDefault
        case .database(let directory):
            _ = try await services.blockingPool.run { try services.modules.openDatabase(directory) }
            return .nssDefault
        }
    }
}
