import AsyncNSS
import Synchronization
import Testing

extension Integration {
    @Suite("Certificate verifiers and client-certificate choosers")
    struct VerifierTests {
        /// A one-shot signal between tasks.
        final class Gate: Sendable {
            private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
            func open() {
                let waiters = state.withLock { state in
                    state.open = true
                    defer { state.waiters.removeAll() }
                    return state.waiters
                }
                for waiter in waiters { waiter.resume() }
            }
            func wait() async {
                await withCheckedContinuation { continuation in
                    let ready = state.withLock { state in
                        if state.open { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if ready { continuation.resume() }
                }
            }
        }

        static func echoListener(_ configuration: TLSConfiguration? = nil) async throws -> (TLSListener, Task<Void, Never>) {
            let chosen: TLSConfiguration
            if let configuration {
                chosen = configuration
            } else {
                chosen = try await TestIdentities.serverConfiguration()
            }
            let listener = try await TLSListener.bind(port: 0, configuration: chosen)
            return (listener, Task { await EchoServer.serveAll(listener) })
        }

        static func ping(_ connection: TLSConnection) async throws -> Bool {
            try await connection.write([42])
            return try await connection.receive() == [42]
        }

        @Test("a slow asynchronous verifier holds up no other connection, then lets its own through")
        func slowAsyncVerifier() async throws {
            try await withTimeout(seconds: 30) {
                let (listener, server) = try await Self.echoListener()
                let entered = Gate()
                let release = Gate()
                var slow = try await TestIdentities.clientConfiguration()
                slow.certificateVerifier = .asynchronous { check in
                    entered.open()
                    await release.wait()
                    return check.builtInFailure == nil ? .accept : .reject(.badCertificate)
                }
                let slowClient = Task { try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: slow) }
                await entered.wait()
                // While that verdict is pending, another connection completes.
                let fast = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                #expect(try await Self.ping(fast))
                await fast.close()
                release.open()
                let connection = try await slowClient.value
                #expect(try await Self.ping(connection))
                await connection.close()
                await listener.close()
                await server.value
            }
        }

        @Test("a rejecting asynchronous verifier fails the handshake; the server receives the alert of the reason", arguments: [TLSVersion.tls12, .tls13])
        func rejectingAsyncVerifier(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(min: version, max: version), logger: logger)
                // A TLS 1.2 client finishes its side of the handshake while the
                // verdict is pending, so the server may complete it and see the
                // alert on its first read instead.
                let server = Task { () -> String? in
                    do {
                        for try await connection in listener {
                            defer { Task { await connection.close() } }
                            do { _ = try await connection.receive() } catch let error as TLSError { return error.nssName }
                        }
                    } catch {}
                    return nil
                }
                var configuration = try await TestIdentities.clientConfiguration()
                configuration.certificateVerifier = .asynchronous { _ in
                    try? await Task.sleep(for: .milliseconds(50))
                    return .reject(.revoked)
                }
                let error = await #expect(throws: TLSError.self) {
                    try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: configuration)
                }
                #expect(error?.nssName == "SEC_ERROR_REVOKED_CERTIFICATE", "\(String(describing: error))")
                // The server's handshake, or its first read, failed on the certificate_revoked alert.
                let line = await log.waitForLine(containing: ["handshake failed", "SSL_ERROR_REVOKED_CERT_ALERT"], seconds: version == .tls13 ? 5 : 0.5)
                await listener.close()
                let readError = await server.value
                #expect(line != nil || readError == "SSL_ERROR_REVOKED_CERT_ALERT", "\(log.all) \(String(describing: readError))")
            }
        }

        @Test("a verifier can pin a certificate the trust refuses (override) and refuse one it accepts (extend)")
        func overrideAndExtend() async throws {
            try await withTimeout(seconds: 30) {
                let (listener, server) = try await Self.echoListener()
                let pinned = try await TestIdentities.localhost().certificateChain[0].derBytes
                let sawFailure = Mutex(false)
                // System roots refuse the self-signed test certificate; the pin accepts it.
                var pinning = TLSConfiguration.makeClientConfiguration()
                pinning.certificateVerifier = .synchronous { check in
                    sawFailure.withLock { $0 = check.builtInFailure != nil }
                    return check.certificates.first?.derBytes == pinned ? .accept : .reject(.badCertificate)
                }
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: pinning)
                #expect(try await Self.ping(connection))
                #expect(sawFailure.withLock { $0 }, "the verifier saw the trust's refusal")
                await connection.close()

                // The trust accepts it; a verifier with another pin refuses.
                var strict = try await TestIdentities.clientConfiguration()
                strict.certificateVerifier = .asynchronous { check in
                    #expect(check.builtInFailure == nil)
                    #expect(check.expectedServerName == "127.0.0.1")
                    return .reject(.unknownIssuer)
                }
                let error = await #expect(throws: TLSError.self) {
                    try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: strict)
                }
                #expect(error?.nssName == "SEC_ERROR_UNKNOWN_ISSUER", "\(String(describing: error))")
                await listener.close()
                await server.value
            }
        }

        @Test("cancelling a connect cancels its pending asynchronous verifier")
        func cancellationReachesVerifier() async throws {
            try await withTimeout(seconds: 30) {
                let (listener, server) = try await Self.echoListener()
                let entered = Gate()
                let cancelled = Gate()
                var configuration = try await TestIdentities.clientConfiguration()
                configuration.certificateVerifier = .asynchronous { _ in
                    entered.open()
                    do {
                        try await Task.sleep(for: .seconds(60))
                    } catch {
                        cancelled.open()
                    }
                    return .accept
                }
                let connect = Task { try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: configuration) }
                await entered.wait()
                connect.cancel()
                await cancelled.wait()
                await #expect(throws: CancellationError.self) { _ = try await connect.value }
                await listener.close()
                await server.value
            }
        }

        @Test("a server's synchronous verifier decides about client certificates; an asynchronous one is refused at bind",
              .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
        func serverVerifier() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                var serverConfiguration = TLSConfiguration.makeServerConfiguration(identity: try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey))
                serverConfiguration.trust = try await .pem(file: pki.caCertificate)
                serverConfiguration.clientCertificatePolicy = .require
                let allowed = Mutex("AsyncNSS Test Client")
                serverConfiguration.certificateVerifier = .synchronous { check in
                    #expect(check.isServer)
                    let subject = check.certificates.first?.subject ?? ""
                    return subject.contains(allowed.withLock { $0 }) ? .accept : .reject(.badCertificate)
                }
                let (listener, server) = try await Self.echoListener(serverConfiguration)
                var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                client.identity = try await TLSIdentity.pem(certificateChainFile: pki.clientCertificate, privateKeyFile: pki.clientKey)
                let accepted = try await TLSConnection.connect(host: "localhost", port: listener.port, configuration: client)
                #expect(try await Self.ping(accepted))
                await accepted.close()

                allowed.withLock { $0 = "somebody else" }
                // TLS 1.3 clients learn of the refusal on their first read.
                do {
                    let refused = try await TLSConnection.connect(host: "localhost", port: listener.port, configuration: client)
                    await #expect(throws: TLSError.self) { _ = try await Self.ping(refused) }
                    await refused.close()
                } catch {
                    #expect(error is TLSError)
                }
                await listener.close()
                await server.value

                var asyncServer = serverConfiguration
                asyncServer.certificateVerifier = .asynchronous { _ in .accept }
                let error = await #expect(throws: TLSError.self) { _ = try await TLSListener.bind(port: 0, configuration: asyncServer) }
                #expect(error?.kind == .invalidConfiguration)
            }
        }

        @Test("an asynchronous chooser gets the CA names of s_server's request and its identity is sent",
              .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
        func chooserWithCANames() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let port = try RawTCP.freePort()
                let server = try ChildProcess("openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", pki.serverCertificate, "-key", pki.serverKey,
                                                          "-CAfile", pki.caCertificate, "-Verify", "1", "-rev"])
                try await RawTCP.waitUntilListening(port: port)
                let identity = try await TLSIdentity.pem(certificateChainFile: pki.clientCertificate, privateKeyFile: pki.clientKey)
                let issuers = Mutex<[String]>([])
                var configuration = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                configuration.clientIdentityChooser = { request in
                    issuers.withLock { $0 = request.acceptableIssuers }
                    try? await Task.sleep(for: .milliseconds(20))
                    return request.acceptableIssuers.contains { $0.contains("AsyncNSS Test CA") } ? identity : nil
                }
                let client = try await TLSConnection.connect(host: "localhost", port: port, configuration: configuration)
                try await client.write(Array("chosen\n".utf8))
                let reply = try await TestServers.read(client, through: "\n")
                #expect(reply.contains("nesohc"), "s_server -Verify 1 answered only because a certificate came: \(reply)")
                #expect(issuers.withLock { $0 }.contains { $0.contains("AsyncNSS Test CA") }, "\(issuers.withLock { $0 })")
                await client.close()
                _ = server.stop()
            }
        }
    }
}
