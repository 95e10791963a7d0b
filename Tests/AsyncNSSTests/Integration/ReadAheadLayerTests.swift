@testable import AsyncNSS
import Testing

extension Integration {
    /// ``ReadAheadLayer`` sits under the SSL layer of every TLS socket, however
    /// it was made: accepted, connected, or upgraded with STARTTLS.
    @Suite("Every TLS socket reads ahead: accepted, connected and STARTTLS")
    struct ReadAheadLayerTests {
        @Test("accepted and connected sockets have the read-ahead layer")
        func acceptedAndConnected() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let server = Task { () -> Bool? in
                    for try await connection in listener {
                        let layered = try await Self.readsAhead(connection)
                        try await EchoServer.echo(connection)
                        return layered
                    }
                    return nil
                }
                let client = try await TLSConnection.connect(host: "localhost", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                #expect(try await Self.readsAhead(client))
                try await Self.roundTrip(client, bytes: 1 << 20)
                await client.close()
                #expect(try await server.value == true)
                await listener.close()
            }
        }

        @Test("STARTTLS sockets have it on both sides, and a megabyte each way arrives intact", arguments: [TLSVersion.tls12, .tls13])
        func startTLS(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TCPListener.bind(port: 0)
                let serverConfiguration = try await TestIdentities.serverConfiguration(min: version, max: version)
                let server = Task { () -> Bool in
                    let plain = try await listener.accept()
                    // One plain byte first: the upgrade must not hand it to TLS.
                    #expect(try await plain.receive(maxBytes: 1) == [0x53])
                    let secure = try await plain.startTLS(serverConfiguration, role: .server)
                    let layered = try await Self.readsAhead(secure)
                    try await EchoServer.echo(secure)
                    return layered
                }
                let plain = try await TCPConnection.connect(host: "localhost", port: listener.port)
                try await plain.write([0x53])
                let secure = try await plain.startTLS(try await TestIdentities.clientConfiguration(), role: .client)
                #expect(secure.info.protocolVersion == version)
                #expect(try await Self.readsAhead(secure))
                try await Self.roundTrip(secure, bytes: 1 << 20)
                await secure.close()
                #expect(try await server.value)
                await listener.close()
            }
        }

        private static func readsAhead(_ connection: TLSConnection) async throws -> Bool {
            let socket = await connection.socket
            return try socket.withFD("looking at the socket's layers") { ReadAheadLayer.isPushed(on: $0) }
        }

        /// Writes `count` bytes of ``TransferPattern`` and checks the echo,
        /// reading while it writes.
        private static func roundTrip(_ connection: TLSConnection, bytes count: Int) async throws {
            let pattern = TransferPattern()
            async let sent: Void = connection.write(pattern.bytes(at: 0, count: count))
            var verifier = TransferVerifier(pattern: pattern)
            var iterator = connection.inbound.makeAsyncIterator()
            while verifier.received < count, let chunk = try await iterator.next() { try verifier.consume(chunk) }
            try await sent
            #expect(verifier.received == count)
            #expect(verifier.mismatchAt == nil)
        }
    }
}
