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

        /// Writes `bytes` of a pattern and reads the echo back, concurrently,
        /// and checks every byte.
        private static func roundTrip(_ connection: TLSConnection, bytes count: Int) async throws {
            let payload = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
            async let sent: Void = connection.write(payload)
            var received: [UInt8] = []
            received.reserveCapacity(count)
            var iterator = connection.inbound.makeAsyncIterator()
            while received.count < count, let chunk = try await iterator.next() { received += chunk }
            try await sent
            #expect(received.count == count)
            #expect(received == payload)
        }
    }
}
