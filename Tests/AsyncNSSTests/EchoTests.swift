import AsyncNSS
import Testing

@Suite("Echo between our listener and our client", .timeLimit(.minutes(2)))
struct EchoTests {
    @Test("echo over loopback", arguments: [TLSVersion.tls12, .tls12, .tls12, .tls12])
    func echo(version: TLSVersion) async throws {
        try await withTimeout(seconds: 30) {
            let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(min: version, max: version))
            let server = Task {
                for try await connection in listener {
                    for try await chunk in connection.inbound {
                        try await connection.write(chunk)
                    }
                    await connection.close()
                    return
                }
            }
            let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
            #expect(client.info.protocolVersion == version)
            try await client.write(Array("hello".utf8))
            var iterator = client.inbound.makeAsyncIterator()
            let reply = try await iterator.next()
            #expect(reply == Array("hello".utf8))
            await client.close()
            try await server.value
            await listener.close()
        }
    }
}
