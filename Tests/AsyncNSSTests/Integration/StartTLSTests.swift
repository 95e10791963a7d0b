import AsyncNSS
import Testing

extension Integration {
    @Suite("STARTTLS: a line protocol that upgrades mid-conversation")
    struct StartTLSTests {
        /// Reads plain bytes until a full line has arrived.
        static func line(_ connection: TCPConnection) async throws -> String {
            var received: [UInt8] = []
            while !received.contains(UInt8(ascii: "\n")), let chunk = try await connection.receive() { received += chunk }
            return String(decoding: received, as: UTF8.self)
        }

        /// A plain read that was already waiting when TLS started must not
        /// read the handshake's bytes: it ends with `closed` as soon as
        /// `startTLS` takes the socket, before the peer sends anything.
        @Test("a plain read waiting when TLS starts ends with closed and leaves the handshake alone", arguments: [false, true])
        func readWaitingAcrossStartTLS(demoted: Bool) async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TCPListener.bind(port: 0)
                async let acceptedPlain = listener.accept()
                let clientPlain = try await TCPConnection.connect(host: "localhost", port: listener.port)
                let serverPlain = try await acceptedPlain
                let waitingRead = Task { try await serverPlain.receive() }
                // Time for the read to be waiting; past the demotion delay
                // (1 s), its wait has moved to the cold loop.
                try await Task.sleep(for: demoted ? .milliseconds(1_500) : .milliseconds(200))
                async let serverTLS = serverPlain.startTLS(try await TestIdentities.serverConfiguration(), role: .server)
                // The client sends its ClientHello only after the read ended:
                // the read ends because startTLS took the socket, not because
                // bytes arrived (which the plain read would rightly read).
                await #expect {
                    // A read that never ends fails the test at its time limit
                    // instead of holding the run.
                    _ = try await withTaskCancellationHandler { try await waitingRead.value } onCancel: { waitingRead.cancel() }
                } throws: { error in
                    (error as? TLSError)?.kind == .closed
                }
                let client = try await clientPlain.startTLS(try await TestIdentities.clientConfiguration(), role: .client)
                let server = try await serverTLS
                try await client.write(Array("after\n".utf8))
                #expect(try await TestServers.read(server, through: "\n") == "after\n")
                await client.close()
                await server.close()
                await listener.close()
            }
        }

        @Test("HELLO, STARTTLS, then the same socket speaks TLS", arguments: [TLSVersion.tls12, .tls13])
        func upgrade(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TCPListener.bind(port: 0)
                let serverConfiguration = try await TestIdentities.serverConfiguration(min: version, max: version)
                let server = Task { () -> TLSConnectionInfo in
                    let plain = try await listener.accept()
                    #expect(try await Self.line(plain) == "HELLO\n")
                    try await plain.write(Array("250 hello\n".utf8))
                    #expect(try await Self.line(plain) == "STARTTLS\n")
                    try await plain.write(Array("220 go ahead\n".utf8))
                    let secure = try await plain.startTLS(serverConfiguration, role: .server)
                    let info = secure.info
                    try await EchoServer.echo(secure)
                    return info
                }

                let plain = try await TCPConnection.connect(host: "localhost", port: listener.port)
                try await plain.write(Array("HELLO\n".utf8))
                #expect(try await Self.line(plain) == "250 hello\n")
                try await plain.write(Array("STARTTLS\n".utf8))
                #expect(try await Self.line(plain) == "220 go ahead\n")
                let secure = try await plain.startTLS(try await TestIdentities.clientConfiguration(), role: .client)
                #expect(secure.info.protocolVersion == version)
                #expect(secure.info.peerSubject == "CN=localhost")
                // The plain side is done: it no longer reads or writes.
                await #expect(throws: TLSError.self) { try await plain.write([1]) }
                try await secure.write(Array("secret\n".utf8))
                var iterator = secure.inbound.makeAsyncIterator()
                #expect(try await iterator.next() == Array("secret\n".utf8))
                await secure.close()
                let serverInfo = try await server.value
                #expect(serverInfo.serverName == "localhost")
                await listener.close()
            }
        }

        @Test("openssl s_client -starttls smtp upgrades against our server", .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
        func opensslSMTP() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
                let listener = try await TCPListener.bind(port: 0)
                let server = Task { () -> TLSConnectionInfo in
                    let plain = try await listener.accept()
                    try await plain.write(Array("220 asyncnss ESMTP\r\n".utf8))
                    #expect(try await Self.line(plain).hasPrefix("EHLO "))
                    try await plain.write(Array("250-asyncnss\r\n250 STARTTLS\r\n".utf8))
                    #expect(try await Self.line(plain) == "STARTTLS\r\n")
                    try await plain.write(Array("220 ready\r\n".utf8))
                    let secure = try await plain.startTLS(.makeServerConfiguration(identity: identity), role: .server)
                    let info = secure.info
                    await secure.close()
                    return info
                }
                // s_client runs the SMTP dialogue, upgrades, verifies, and exits
                // when its standard input ends.
                let output = try await ExternalTool.run("openssl", [
                    "s_client", "-starttls", "smtp", "-connect", "127.0.0.1:\(listener.port)", "-servername", "localhost", "-CAfile", pki.caCertificate,
                    "-verify_return_error", "-verify_hostname", "localhost", "-brief",
                ], timeout: 20)
                #expect(output.exitedCleanly, "\(output)")
                #expect(output.elapsed < .seconds(10), "\(output)")
                #expect(output.stderr.contains("Verification: OK"), "\(output)")
                #expect(output.stderr.contains("Protocol version: TLSv1.3"), "\(output)")
                let info = try await server.value
                #expect(info.protocolVersion == .tls13)
                #expect(info.serverName == "localhost")
                await listener.close()
            }
        }

        @Test("a client verifies the server after STARTTLS too")
        func verifiesAfterUpgrade() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TCPListener.bind(port: 0)
                let serverConfiguration = try await TestIdentities.serverConfiguration()
                let server = Task {
                    let plain = try await listener.accept()
                    _ = try? await plain.startTLS(serverConfiguration, role: .server)
                }
                let plain = try await TCPConnection.connect(host: "127.0.0.1", port: listener.port)
                var configuration = try await TestIdentities.clientConfiguration()
                configuration.serverName = "wrong.example"
                let error = await #expect(throws: TLSError.self) { _ = try await plain.startTLS(configuration, role: .client) }
                #expect(error?.nssName == "SSL_ERROR_BAD_CERT_DOMAIN")
                try await server.value
                await listener.close()
            }
        }
    }
}
