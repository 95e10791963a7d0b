import AsyncNSS
import Testing

extension Integration {
    @Suite("TLS 1.3 key updates")
    struct KeyUpdateTests {
        @Test("both sides update keys while data keeps flowing")
        func updateKeys() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let accepted = Task { () -> TLSConnection? in
                    for try await connection in listener { return connection }
                    return nil
                }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                let server = try #require(try await accepted.value)
                let echo = Task { try await EchoServer.echo(server) }
                var events = client.handshakeEvents.makeAsyncIterator()
                #expect(await events.next()?.kind == .initial)

                var iterator = client.inbound.makeAsyncIterator()
                for round in 0..<5 {
                    let event = try await client.updateKeys(requestPeerUpdate: round % 2 == 0)
                    #expect(event.kind == .keyUpdate)
                    #expect(event.sequenceNumber == round + 2)
                    let payload = [UInt8](repeating: UInt8(round), count: 40_000)
                    try await client.write(payload)
                    var received: [UInt8] = []
                    while received.count < payload.count, let chunk = try await iterator.next() { received += chunk }
                    #expect(received == payload)
                    #expect(await events.next()?.kind == .keyUpdate)
                }
                let serverEvent = try await server.updateKeys()
                #expect(serverEvent.kind == .keyUpdate)
                try await client.write([42])
                #expect(try await iterator.next() == [42])
                await client.close()
                try await echo.value
                await listener.close()
            }
        }

        @Test("openssl s_server sees our KeyUpdate", .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
        func opensslSeesKeyUpdate() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let port = try RawTCP.freePort()
                let server = try ChildProcess("openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", pki.serverCertificate, "-key", pki.serverKey, "-tls1_3", "-msg", "-rev"])
                try await RawTCP.waitUntilListening(port: port)
                let configuration = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                let client = try await TLSConnection.connect(host: "localhost", port: port, configuration: configuration)
                try await client.updateKeys(requestPeerUpdate: true)
                try await client.write(Array("after the update\n".utf8))
                // -rev answers each line reversed, under the new keys both ways.
                let reply = try await TestServers.read(client, through: "\n")
                #expect(reply.contains("etadpu eht retfa"), "\(reply)")
                await client.close()
                let output = server.stop()
                // Ours arrives (<<<), and OpenSSL answers the request with its own (>>>).
                #expect(output.contains("<<< TLS 1.3, Handshake [length 0005], KeyUpdate"), "\(output.suffix(2000))")
                #expect(output.contains(">>> TLS 1.3, Handshake [length 0005], KeyUpdate"), "\(output.suffix(2000))")
            }
        }

        @Test("TLS 1.2 has no key updates")
        func tls12Refuses() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(min: .tls12, max: .tls12))
                let server = Task { await EchoServer.serveAll(listener) }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                let error = await #expect(throws: TLSError.self) { try await client.updateKeys() }
                #expect(error?.kind == .invalidConfiguration)
                await client.close()
                await listener.close()
                await server.value
            }
        }
    }
}
