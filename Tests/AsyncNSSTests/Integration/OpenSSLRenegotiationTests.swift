import AsyncNSS
import Testing

extension Integration {
    /// Our client against `openssl s_server` over TLS 1.2: renegotiations the
    /// server starts (its `R` command, which also asks for a certificate) and
    /// ones our client starts.
    @Suite("Renegotiation with openssl s_server", .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
    struct OpenSSLRenegotiationTests {
        /// `openssl s_server -tls1_2`, trusting the test CA for client certificates.
        static func startServer(_ pki: TestPKI, _ extraArguments: [String] = []) async throws -> (StreamingChild, Int) {
            let port = try RawTCP.freePort()
            let server = try StreamingChild(executable: ExternalTool.path("openssl") ?? "openssl", [
                "s_server", "-accept", "127.0.0.1:\(port)", "-cert", pki.serverCertificate, "-key", pki.serverKey,
                "-CAfile", pki.caCertificate, "-tls1_2",
            ] + extraArguments, stdin: .open([]))
            try await RawTCP.waitUntilListening(port: port)
            return (server, port)
        }

        static func client(_ pki: TestPKI) async throws -> TLSConfiguration {
            var configuration = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
            configuration.identity = try await TLSIdentity.pem(certificateChainFile: pki.clientCertificate, privateKeyFile: pki.clientKey)
            return configuration
        }

        @Test("our client follows s_server's renegotiation (R, which asks for its certificate)")
        func followsServerRenegotiation() async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let (server, port) = try await Self.startServer(pki)
                let client = try await TLSConnection.connect(host: "localhost", port: port, configuration: try await Self.client(pki))
                var events = client.handshakeEvents.makeAsyncIterator()
                #expect(await events.next()?.kind == .initial)
                // The renegotiation arrives while our client reads.
                let reader = Task { () -> [UInt8] in
                    var received: [UInt8] = []
                    do { while let chunk = try await client.receive() { received += chunk } } catch {}
                    return received
                }
                try await client.write(Array("before\n".utf8))
                _ = await server.stdout.waitForLine(seconds: 10) { $0 == "before" }
                #expect(server.send("R\n"))
                let event = await events.next()
                #expect(event?.kind == .renegotiation)
                #expect(event?.info.protocolVersion == .tls12)
                try await client.write(Array("after\n".utf8))
                let after = await server.stdout.waitForLine(seconds: 10) { $0 == "after" }
                #expect(after != nil, "\(server.transcript)")
                // s_server reports the renegotiation it drove as successful.
                #expect(server.stdout.text.contains("SSL_do_handshake -> 1"), "\(server.transcript)")
                await client.close()
                _ = await reader.value
                await server.kill()
            }
        }

        @Test("our client starts a renegotiation against s_server and keeps talking")
        func startsRenegotiation() async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let (server, port) = try await Self.startServer(pki, ["-client_renegotiation"])
                let client = try await TLSConnection.connect(host: "localhost", port: port, configuration: try await Self.client(pki))
                for round in 1...3 {
                    let event = try await client.rehandshake()
                    #expect(event.kind == .renegotiation)
                    #expect(event.sequenceNumber == round + 1)
                    try await client.write(Array("round \(round)\n".utf8))
                    let line = await server.stdout.waitForLine(seconds: 10) { $0 == "round \(round)" }
                    #expect(line != nil, "\(server.transcript)")
                }
                await client.close()
                await server.kill()
            }
        }

        @Test("s_server's default refusal of client renegotiation is a clear error, and the connection goes on")
        func refusedByServer() async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let (server, port) = try await Self.startServer(pki)
                let client = try await TLSConnection.connect(host: "localhost", port: port, configuration: try await Self.client(pki))
                let error = await #expect(throws: TLSError.self) { try await client.rehandshake() }
                #expect(error?.kind == .renegotiationRefused, "\(String(describing: error))")
                try await client.write(Array("still here\n".utf8))
                let line = await server.stdout.waitForLine(seconds: 10) { $0 == "still here" }
                #expect(line != nil, "\(server.transcript)")
                await client.close()
                await server.kill()
            }
        }
    }
}
