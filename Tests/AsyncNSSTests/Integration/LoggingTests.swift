import AsyncNSS
import Testing

extension Integration {
    @Suite("What the listener logs")
    struct LoggingTests {
        @Test("a completed handshake is logged at debug with the peer, version, cipher, SNI and ALPN")
        func handshakeAtDebug() async throws {
            try await withTimeout(seconds: 30) {
                let (logger, log) = CapturingLogHandler.logger()
                var server = try await TestIdentities.serverConfiguration()
                server.applicationProtocols = ["http/1.1"]
                let listener = try await TLSListener.bind(port: 0, configuration: server, logger: logger)
                let serving = Task { await EchoServer.serveAll(listener) }
                var client = try await TestIdentities.clientConfiguration()
                client.applicationProtocols = ["http/1.1"]
                client.serverName = "localhost"
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                let line = await log.waitForLine(containing: ["debug handshake completed", "version=TLSv1.3", "cipher=TLS_", "sni=localhost", "alpn=http/1.1", "peer=127.0.0.1:"])
                #expect(line != nil, "\(log.all)")
                await connection.close()
                await listener.close()
                await serving.value
            }
        }
    }
}
