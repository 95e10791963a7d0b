import AsyncNSS
import Foundation
import Logging
import Testing

extension Integration {
    @Suite("Trust: system roots, PEM anchors, NSS databases, client certificates")
    struct TrustTests {
        private typealias Harness = IdentityTrustHarness

        private func caSignedIdentity(_ pki: TestPKI) async throws -> TLSIdentity {
            try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
        }

        // MARK: Server verification by the client

        @Test("the default client configuration (system roots) refuses a self-signed server")
        func systemRootsRefuseSelfSigned() async throws {
            try await withTimeout(seconds: 30) {
                // A fresh self-signed certificate: no database or module loaded
                // in this process can trust it. (A test-CA server would do only
                // until a test opens the PKI's database, whose trusted CA NSS's
                // default verification then trusts process-wide, as documented.)
                let identity = try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])
                let client = TLSConfiguration.makeClientConfiguration()
                #expect(client.trust.verifiesPeer)
                #expect(client.identity == nil)
                let error = try await Harness.failedConnect(identity: identity, client: client)
                #expect(error.kind == .nss, "\(error)")
                // NSS finds the certificate to be its own issuer, and not a CA.
                #expect(error.nssName == "SEC_ERROR_CA_CERT_INVALID", "\(error)")
                #expect(error.description.hasPrefix("handshake with 127.0.0.1:"), "\(error)")
            }
        }

        @Test("the default client configuration refuses a server signed by an unknown CA", .enabled(if: ExternalTool.isInstalled("openssl")))
        func systemRootsRefusePrivateCA() async throws {
            try await withTimeout(seconds: 60) {
                // A CA of its own, in no database this process may have opened.
                let (scratch, identity) = try await Self.privateCAIdentity()
                defer { withExtendedLifetime(scratch) {} }
                #expect(identity.certificateChain.count == 1)
                let error = try await Harness.failedConnect(identity: identity, client: .makeClientConfiguration())
                #expect(error.kind == .nss, "\(error)")
                #expect(error.nssName == "SEC_ERROR_UNKNOWN_ISSUER", "\(error)")
                #expect(error.description.hasPrefix("handshake with 127.0.0.1:"), "\(error)")

                // The same server is accepted once its CA is the anchor.
                let caText = try String(contentsOfFile: scratch.file("ca.pem"), encoding: .utf8)
                let info = try await Harness.roundTrip(identity: identity, client: .makeClientConfiguration(trust: try .pem(caText)))
                #expect(info.peerSubject?.contains("CN=private.test") == true)
            }
        }

        /// A server identity for 127.0.0.1 signed by a CA made just now.
        private static func privateCAIdentity() async throws -> (TemporaryDirectory, TLSIdentity) {
            let dir = try TemporaryDirectory()
            func openssl(_ arguments: [String]) async throws {
                let output = try await ExternalTool.run("openssl", arguments)
                guard output.status == 0 else { throw TestPKI.PKIFailure(command: "openssl " + arguments.joined(separator: " "), output: output) }
            }
            let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
            _ = try dir.write("leaf.ext", "subjectAltName=DNS:private.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
            try await openssl(["req", "-x509"] + ec + ["-keyout", dir.file("ca.key"), "-out", dir.file("ca.pem"), "-subj", "/CN=AsyncNSS Private CA", "-days", "2",
                               "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            try await openssl(["req"] + ec + ["-keyout", dir.file("leaf.key"), "-out", dir.file("leaf.csr"), "-subj", "/CN=private.test"])
            try await openssl(["x509", "-req", "-in", dir.file("leaf.csr"), "-CA", dir.file("ca.pem"), "-CAkey", dir.file("ca.key"), "-CAcreateserial",
                               "-out", dir.file("leaf.pem"), "-days", "2", "-extfile", dir.file("leaf.ext")])
            let identity = try await TLSIdentity.pem(certificateChainFile: dir.file("leaf.pem"), privateKeyFile: dir.file("leaf.key"))
            return (dir, identity)
        }

        @Test("PEM CA trust accepts the CA-signed server by DNS name and by IP address", arguments: ["localhost", "127.0.0.1"])
        func pemTrustAccepts(host: String) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let trust = try await TLSTrust.pem(file: pki.caCertificate)
                #expect(trust.verifiesPeer)
                let info = try await Harness.roundTrip(identity: try await caSignedIdentity(pki), client: .makeClientConfiguration(trust: trust), host: host)
                #expect(info.peerSubject?.contains("CN=localhost") == true)
            }
        }

        @Test("PEM CA trust accepts an explicit serverName that the certificate names")
        func pemTrustServerName() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                client.serverName = "localhost"
                let info = try await Harness.roundTrip(identity: try await caSignedIdentity(pki), client: client, host: "127.0.0.1")
                #expect(info.serverName == "localhost")
            }
        }

        @Test("PEM CA trust refuses the server for a name it does not carry")
        func pemTrustWrongName() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                client.serverName = "wrong.example"
                let error = try await Harness.failedConnect(identity: try await caSignedIdentity(pki), client: client)
                #expect(error.kind == .nss)
                #expect(error.nssName == "SSL_ERROR_BAD_CERT_DOMAIN", "\(error)")
                #expect(error.description.hasPrefix("handshake with 127.0.0.1:"), "\(error)")
            }
        }

        @Test("PEM trust in another CA refuses the CA-signed server")
        func pemTrustOtherCA() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let stranger = try await TLSIdentity.selfSigned(names: ["Other CA"])
                let client = TLSConfiguration.makeClientConfiguration(trust: try TLSTrust.pem(stranger.certificateChain[0].pemRepresentation))
                let error = try await Harness.failedConnect(identity: try await caSignedIdentity(pki), client: client)
                #expect(error.kind == .nss)
                // NSS's name misleads (nobody marked anything); the note says what is true.
                #expect(error.nssName == "SEC_ERROR_UNTRUSTED_ISSUER", "\(error)")
                #expect(error.message.contains("Nothing was marked untrusted"), "\(error)")
            }
        }

        @Test("database trust accepts the CA-signed server", .enabled(if: ExternalTool.isInstalled("certutil", "pk12util")))
        func databaseTrust() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let trust = TLSTrust.database(pki.database)
                #expect(trust.verifiesPeer)
                let identity = try await caSignedIdentity(pki)
                for host in ["localhost", "127.0.0.1"] {
                    let info = try await Harness.roundTrip(identity: identity, client: .makeClientConfiguration(trust: trust), host: host)
                    #expect(info.peerSubject?.contains("CN=localhost") == true)
                }
                // The database path without `sql:` names the same database.
                let bare = TLSTrust.database(String(pki.database.dropFirst("sql:".count)))
                _ = try await Harness.roundTrip(identity: identity, client: .makeClientConfiguration(trust: bare))

                // The name is still checked.
                var wrongName = TLSConfiguration.makeClientConfiguration(trust: trust)
                wrongName.serverName = "wrong.example"
                let error = try await Harness.failedConnect(identity: identity, client: wrongName)
                #expect(error.nssName == "SSL_ERROR_BAD_CERT_DOMAIN", "\(error)")
            }
        }

        @Test("insecureNoVerification accepts anything, even a wrong name")
        func insecure() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                #expect(TLSTrust.insecureNoVerification.verifiesPeer == false)
                var client = TLSConfiguration.makeClientConfiguration(trust: .insecureNoVerification)
                let selfSigned = try await TLSIdentity.selfSigned(names: ["unrelated.test"])
                var info = try await Harness.roundTrip(identity: selfSigned, client: client)
                #expect(info.peerSubject == "CN=unrelated.test")
                client.serverName = "wrong.example"
                info = try await Harness.roundTrip(identity: try await caSignedIdentity(pki), client: client)
                #expect(info.peerSubject?.contains("CN=localhost") == true)
                #expect(info.serverName == "wrong.example")
            }
        }

        @Test("TLSTrust.pem refuses text without a certificate, and a missing file")
        func invalidPEMTrust() async throws {
            try await withTimeout(seconds: 30) {
                let error = try #require(throws: TLSError.self) { try TLSTrust.pem("not pem") }
                #expect(error.kind == .invalidConfiguration)
                #expect(error.description.contains("CERTIFICATE"), "\(error)")

                let broken = try #require(throws: TLSError.self) {
                    try TLSTrust.pem("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
                }
                #expect(broken.kind == .invalidConfiguration)

                let pki = try await TestPKI.shared()
                let keyOnly = try #require(throws: TLSError.self) {
                    try TLSTrust.pem(try String(contentsOfFile: pki.serverKey, encoding: .utf8))
                }
                #expect(keyOnly.kind == .invalidConfiguration)

                let scratch = try TemporaryDirectory()
                let missing = scratch.file("no-ca.pem")
                let missingError = try await #require(throws: TLSError.self) { try await TLSTrust.pem(file: missing) }
                #expect(missingError.description.contains(missing), "\(missingError)")

                let notPEM = try scratch.write("not.pem", "not pem\n")
                let notPEMError = try await #require(throws: TLSError.self) { try await TLSTrust.pem(file: notPEM) }
                #expect(notPEMError.kind == .invalidConfiguration)
                #expect(notPEMError.description.contains(notPEM), "\(notPEMError)")
            }
        }

        // MARK: Client certificates

        private func clientCertificateServer(_ pki: TestPKI, policy: ClientCertificatePolicy, version: TLSVersion? = nil) async throws -> TLSConfiguration {
            var server = TLSConfiguration.makeServerConfiguration(identity: try await caSignedIdentity(pki))
            server.clientCertificatePolicy = policy
            server.trust = try await .pem(file: pki.caCertificate)
            if let version {
                server.minimumVersion = version
                server.maximumVersion = version
            }
            return server
        }

        private func client(_ pki: TestPKI, withCertificate: Bool) async throws -> TLSConfiguration {
            var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
            if withCertificate {
                client.identity = try await TLSIdentity.pem(certificateChainFile: pki.clientCertificate, privateKeyFile: pki.clientKey)
            }
            return client
        }

        /// Accepts connections, answers each with one line naming the client's
        /// certificate, and reports each connection's info. A failed write or
        /// a listener error fails the test.
        private func serveInfo(_ listener: TLSListener, sourceLocation: SourceLocation = #_sourceLocation) -> (Task<Void, Never>, AsyncStream<TLSConnectionInfo>) {
            let (stream, continuation) = AsyncStream.makeStream(of: TLSConnectionInfo.self)
            let task = Task {
                await withDiscardingTaskGroup { group in
                    do {
                        for try await connection in listener {
                            continuation.yield(connection.info)
                            group.addTask {
                                do {
                                    try await connection.write(Array("client: \(connection.info.peerSubject ?? "none")\n".utf8))
                                } catch {
                                    Issue.record(error, "answering \(connection.remoteAddress)", sourceLocation: sourceLocation)
                                }
                                await connection.close()
                            }
                        }
                    } catch {
                        Issue.record(error, "the listener failed", sourceLocation: sourceLocation)
                    }
                }
                continuation.finish()
            }
            return (task, stream)
        }

        /// Connects and reads the server's line to its end.
        private func exchange(port: Int, client: TLSConfiguration) async throws -> String {
            let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: client)
            do {
                let text = try await TestServers.read(connection, through: "\n")
                await connection.close()
                return text
            } catch {
                await connection.close()
                throw error
            }
        }

        @Test("require: a client without a certificate is refused, the listener keeps serving, and a client with one is accepted",
              arguments: [TLSVersion.tls12, .tls13])
        func requireClientCertificate(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: try await clientCertificateServer(pki, policy: .require, version: version), logger: logger)
                let (server, accepted) = serveInfo(listener)
                var infos = accepted.makeAsyncIterator()

                // Without a certificate: TLS 1.2 fails in connect; in TLS 1.3
                // the client finishes first, and the server's alert ends the first read.
                let bare = try await client(pki, withCertificate: false)
                let refusal = await #expect(throws: TLSError.self) {
                    _ = try await exchange(port: listener.port, client: bare)
                }
                #expect(refusal?.kind == .nss, "\(String(describing: refusal))")
                // TLS 1.2: a bad_certificate alert; TLS 1.3: certificate_required.
                let alert = version == .tls12 ? "SSL_ERROR_BAD_CERT_ALERT" : "SSL_ERROR_RX_CERTIFICATE_REQUIRED_ALERT"
                #expect(refusal?.nssName == alert, "\(String(describing: refusal))")
                let logged = await log.waitForLine(containing: ["handshake failed", "SSL_ERROR_NO_CERTIFICATE"])
                #expect(logged != nil, "\(log.all)")

                // The listener still serves a later good client, and delivered
                // no connection for the refused one.
                let good = try await client(pki, withCertificate: true)
                let reply = try await exchange(port: listener.port, client: good)
                #expect(reply.hasPrefix("client: ") && reply.contains("AsyncNSS Test Client"), "\(reply)")
                let first = await infos.next()
                #expect(first?.peerSubject?.contains("AsyncNSS Test Client") == true, "\(String(describing: first))")
                #expect(first?.peerCertificates.count == 1)
                #expect(first?.protocolVersion == version)

                await listener.close()
                await server.value
                #expect(await infos.next() == nil)
            }
        }

        @Test("require: a client certificate from another issuer is refused")
        func requireUntrustedClientCertificate() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: try await clientCertificateServer(pki, policy: .require), logger: logger)
                let (server, accepted) = serveInfo(listener)
                var stranger = try await client(pki, withCertificate: false)
                stranger.identity = try await TLSIdentity.selfSigned(names: ["stranger.test"])
                let refusal = await #expect(throws: TLSError.self) {
                    _ = try await exchange(port: listener.port, client: stranger)
                }
                #expect(refusal?.nssName == "SSL_ERROR_UNKNOWN_CA_ALERT", "\(String(describing: refusal))")
                #expect(await log.waitForLine(containing: ["handshake failed", "SEC_ERROR_UNKNOWN_ISSUER", "Nothing was marked untrusted"]) != nil, "\(log.all)")
                await listener.close()
                await server.value
                var infos = accepted.makeAsyncIterator()
                #expect(await infos.next() == nil)
            }
        }

        @Test("request: a client without a certificate is accepted; one with a certificate is identified",
              arguments: [TLSVersion.tls12, .tls13])
        func requestClientCertificate(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                // One listener per client, so that the second cannot resume the
                // first one's session (see the resumption tests below).
                for withCertificate in [false, true] {
                    let (logger, log) = CapturingLogHandler.logger()
                    let listener = try await TLSListener.bind(port: 0, configuration: try await clientCertificateServer(pki, policy: .request, version: version), logger: logger)
                    let (server, accepted) = serveInfo(listener)
                    var infos = accepted.makeAsyncIterator()
                    let reply = try await exchange(port: listener.port, client: try await client(pki, withCertificate: withCertificate))
                    let info = await infos.next()
                    #expect(info?.protocolVersion == version)
                    if withCertificate {
                        #expect(reply.contains("AsyncNSS Test Client"), "\(reply)")
                        #expect(info?.peerSubject?.contains("AsyncNSS Test Client") == true, "\(String(describing: info))")
                    } else {
                        #expect(reply == "client: none\n")
                        #expect(info != nil)
                        #expect(info?.peerCertificates.isEmpty == true, "\(String(describing: info))")
                        #expect(info?.peerSubject == nil)
                    }
                    await listener.close()
                    await server.value
                    #expect(log.problems().isEmpty, "\(log.all)")
                }
            }
        }

        @Test("none: a client identity is not sent when the server does not ask")
        func noClientCertificateRequested() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                var server = TLSConfiguration.makeServerConfiguration(identity: try await caSignedIdentity(pki))
                #expect(server.clientCertificatePolicy == .none)
                server.trust = try await .pem(file: pki.caCertificate)
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: server, logger: logger)
                let (task, accepted) = serveInfo(listener)
                var infos = accepted.makeAsyncIterator()
                #expect(try await exchange(port: listener.port, client: try await client(pki, withCertificate: true)) == "client: none\n")
                #expect(await infos.next()?.peerCertificates.isEmpty == true)
                await listener.close()
                await task.value
                #expect(log.problems().isEmpty, "\(log.all)")
            }
        }

        // MARK: Session resumption across configurations
        //
        // NSS keeps one client session cache for the process, keyed by
        // address, port and server name. A configuration must not resume a
        // session that another configuration authenticated differently.

        @Test("a session made with insecureNoVerification does not let a verifying client skip verification",
              arguments: [TLSVersion.tls12, .tls13])
        func resumptionDoesNotBypassTrust(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                // A server the verifying client does not trust.
                var server = TLSConfiguration.makeServerConfiguration(identity: try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"]))
                server.minimumVersion = version
                server.maximumVersion = version
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: server, logger: logger)
                let (task, _) = serveInfo(listener)

                let insecure = TLSConfiguration.makeClientConfiguration(trust: .insecureNoVerification)
                #expect(try await exchange(port: listener.port, client: insecure) == "client: none\n")

                let verifying = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                do {
                    do {
                        let connection = try await TLSConnection.connect(host: "localhost", port: listener.port, configuration: verifying)
                        let resumed = connection.info.resumed
                        await connection.close()
                        Issue.record("a client trusting only the test CA connected to a self-signed server (resumed: \(resumed))")
                    } catch let error as TLSError {
                        #expect(error.kind == .nss, "\(error)")
                        #expect(error.nssName == "SEC_ERROR_UNKNOWN_ISSUER", "\(error)")
                    }
                }
                // The server hears the client's refusal as an alert, and that is all it logs.
                #expect(await log.waitForLine(containing: ["handshake failed", "SSL_ERROR_UNKNOWN_CA_ALERT"]) != nil, "\(log.all)")
                await listener.close()
                await task.value
                #expect(log.problems(allowing: ["SSL_ERROR_UNKNOWN_CA_ALERT"]).isEmpty, "\(log.all)")
            }
        }

        @Test("a session made with a client certificate is not resumed by a client without one",
              arguments: [TLSVersion.tls12, .tls13])
        func resumptionDoesNotLendClientCertificate(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: try await clientCertificateServer(pki, policy: .require, version: version), logger: logger)
                let (task, accepted) = serveInfo(listener)
                var infos = accepted.makeAsyncIterator()

                let good = try await exchange(port: listener.port, client: try await client(pki, withCertificate: true))
                #expect(good.contains("AsyncNSS Test Client"), "\(good)")
                #expect(await infos.next()?.peerSubject?.contains("AsyncNSS Test Client") == true)

                let bare = try await client(pki, withCertificate: false)
                let refused = await #expect(throws: TLSError.self, "a client without a certificate was served") {
                    _ = try await exchange(port: listener.port, client: bare)
                }
                #expect(refused?.kind == .nss, "\(String(describing: refused))")
                // The server refuses the client for having no certificate, and logs only that.
                #expect(await log.waitForLine(containing: ["handshake failed", "SSL_ERROR_NO_CERTIFICATE"]) != nil, "\(log.all)")
                await listener.close()
                await task.value
                #expect(log.problems(allowing: ["SSL_ERROR_NO_CERTIFICATE"]).isEmpty, "\(log.all)")
            }
        }

        @Test("a client with a certificate does not resume an anonymous session on a server that asks for one",
              arguments: [TLSVersion.tls12, .tls13])
        func resumptionDoesNotDropClientCertificate(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: try await clientCertificateServer(pki, policy: .request, version: version), logger: logger)
                let (task, accepted) = serveInfo(listener)
                var infos = accepted.makeAsyncIterator()

                #expect(try await exchange(port: listener.port, client: try await client(pki, withCertificate: false)) == "client: none\n")
                #expect(await infos.next()?.peerCertificates.isEmpty == true)

                let reply = try await exchange(port: listener.port, client: try await client(pki, withCertificate: true))
                let info = await infos.next()
                do {
                    #expect(reply.contains("AsyncNSS Test Client"), "\(reply)")
                    #expect(info?.peerSubject?.contains("AsyncNSS Test Client") == true, "\(String(describing: info))")
                }
                await listener.close()
                await task.value
                #expect(log.problems().isEmpty, "\(log.all)")
            }
        }
    }
}
