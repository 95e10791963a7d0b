import AsyncNSS
import Testing

extension Integration {
    @Suite("Asking for a client certificate in the middle of a connection", .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
    struct ClientCertificateRequestTests {
        typealias Pair = RehandshakeTests.Pair

        /// A server that asks for nothing at first and trusts the test CA; a
        /// client that trusts it too, with the client certificate if asked.
        static func pair(_ pki: TestPKI, version: TLSVersion, clientHasCertificate: Bool) async throws -> Pair {
            var server = TLSConfiguration.makeServerConfiguration(identity: try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey))
            server.trust = try await .pem(file: pki.caCertificate)
            server.minimumVersion = version
            server.maximumVersion = version
            var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
            client.minimumVersion = version
            client.maximumVersion = version
            if clientHasCertificate {
                client.identity = try await TLSIdentity.pem(certificateChainFile: pki.clientCertificate, privateKeyFile: pki.clientKey)
            }
            return try await Pair.make(server: server, client: client)
        }

        @Test("the server gets the verified chain, sees the event, and the connection goes on", arguments: [TLSVersion.tls12, .tls13])
        func certificateArrives(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let pair = try await Self.pair(pki, version: version, clientHasCertificate: true)
                #expect(pair.server.info.peerCertificates.isEmpty)
                // The client reads (and echoes), which is what answers the request.
                let echo = Task { try await EchoServer.echo(pair.client) }
                var events = pair.server.handshakeEvents.makeAsyncIterator()
                #expect(await events.next()?.kind == .initial)

                let chain = try await pair.server.requestClientCertificate()
                #expect(chain.first?.subject.contains("AsyncNSS Test Client") == true, "\(chain.map(\.subject))")
                let event = await events.next()
                #expect(event?.kind == (version == .tls13 ? .postHandshakeAuthentication : .renegotiation))
                #expect(event?.info.peerSubject == chain.first?.subject)
                #expect(pair.server.info.peerSubject == chain.first?.subject)

                try await pair.server.write(Array("after\n".utf8))
                #expect(try await RehandshakeTests.read(pair.server, count: 6) == Array("after\n".utf8))
                await pair.finish(echo: echo, echoing: pair.client)
            }
        }

        @Test("a client without a certificate: a clear error, and the connection goes on", arguments: [TLSVersion.tls12, .tls13])
        func noCertificate(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let pair = try await Self.pair(pki, version: version, clientHasCertificate: false)
                let echo = Task { try await EchoServer.echo(pair.client) }
                let error = await #expect(throws: TLSError.self) { try await pair.server.requestClientCertificate() }
                // TLS 1.2 asks through a renegotiation and gets an empty
                // certificate; a TLS 1.3 client without an identity did not
                // offer post-handshake authentication at all.
                #expect(error?.kind == (version == .tls13 ? .notOfferedByPeer : .peerCertificateMissing), "\(String(describing: error))")
                if version == .tls13 {
                    #expect(error?.nssName == "SSL_ERROR_MISSING_POST_HANDSHAKE_AUTH_EXTENSION")
                }
                try await pair.server.write(Array("still\n".utf8))
                #expect(try await RehandshakeTests.read(pair.server, count: 6) == Array("still\n".utf8))
                await pair.finish(echo: echo, echoing: pair.client)
            }
        }

        @Test("a certificate the server does not trust ends the connection with the NSS error", arguments: [TLSVersion.tls12, .tls13])
        func untrustedCertificate(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                var server = TLSConfiguration.makeServerConfiguration(identity: try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey))
                // Trusts only itself, not the CA that signed the client.
                server.trust = .certificates(try await TestIdentities.localhost().certificateChain)
                server.minimumVersion = version
                server.maximumVersion = version
                var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                client.minimumVersion = version
                client.maximumVersion = version
                client.identity = try await TLSIdentity.pem(certificateChainFile: pki.clientCertificate, privateKeyFile: pki.clientKey)
                let pair = try await Pair.make(server: server, client: client)
                let echo = Task { try await EchoServer.echo(pair.client) }
                let error = await #expect(throws: TLSError.self) { try await pair.server.requestClientCertificate() }
                #expect(error?.kind == .nss, "\(String(describing: error))")
                // The trust does not know the client's CA: NSS says so, and
                // the note says which trust was in effect.
                #expect(["SEC_ERROR_UNKNOWN_ISSUER", "SEC_ERROR_UNTRUSTED_ISSUER"].contains(error?.nssName ?? ""), "\(String(describing: error))")
                #expect(error?.message.contains("the 1 trust anchor given in the configuration") == true, "\(String(describing: error))")
                // The client learns it from the server's alert.
                await #expect {
                    try await echo.value
                } throws: { error in
                    (error as? TLSError)?.nssName == "SSL_ERROR_UNKNOWN_CA_ALERT"
                }
                await pair.close()
            }
        }

        @Test("a client cannot ask")
        func clientCannotAsk() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let pair = try await Self.pair(pki, version: .tls13, clientHasCertificate: true)
                let error = await #expect(throws: TLSError.self) { try await pair.client.requestClientCertificate() }
                #expect(error?.kind == .invalidConfiguration)
                await pair.close()
            }
        }
    }
}
