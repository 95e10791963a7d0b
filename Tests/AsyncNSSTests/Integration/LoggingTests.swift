import AsyncNSS
import Logging
import Testing

extension Integration {
    @Suite("What listeners and connections log")
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

        /// The `connection=N` metadata of the first line that has all of `fragments`.
        private static func connectionID(in log: CapturingLogHandler.Store, _ fragments: [String]) async -> String? {
            guard let line = await log.waitForLine(containing: fragments) else { return nil }
            return line.split(separator: " ").first { $0.hasPrefix("connection=") }.map(String.init)
        }

        @Test("a client logs through connect(logger:), and the connection's logger carries its metadata for the application")
        func clientLogger() async throws {
            try await withTimeout(seconds: 30) {
                let (logger, log) = CapturingLogHandler.logger()
                let (serverLogger, serverLog) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(), logger: serverLogger)
                let serving = Task { await EchoServer.serveAll(listener) }
                var client = try await TestIdentities.clientConfiguration()
                client.serverName = "localhost"
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client, logger: logger)
                let id = await Self.connectionID(in: log, ["debug handshake completed", "version=TLSv1.3", "sni=localhost", "peer=127.0.0.1:\(listener.port)"])
                #expect(id != nil, "\(log.all)")

                connection.logger.notice("application line")
                let line = await log.waitForLine(containing: ["notice application line", "cipher=TLS_", "version=TLSv1.3"])
                #expect(line != nil && id.map { line?.contains($0) == true } == true, "\(log.all)")
                await connection.close()
                await listener.close()
                await serving.value
                #expect(serverLog.problems().isEmpty, "\(serverLog.all)")
            }
        }

        @Test("a server's TLSConfiguration.logger takes its connections' lines; the listener's logger keeps the rest")
        func configurationLogger() async throws {
            try await withTimeout(seconds: 30) {
                let (listenerLogger, listenerLog) = CapturingLogHandler.logger()
                let (connectionLogger, connectionLog) = CapturingLogHandler.logger()
                var server = try await TestIdentities.serverConfiguration()
                server.logger = connectionLogger
                let listener = try await TLSListener.bind(port: 0, configuration: server, logger: listenerLogger)
                let serving = Task { await EchoServer.serveAll(listener) }
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                #expect(await connectionLog.waitForLine(containing: ["debug handshake completed", "connection="]) != nil, "\(connectionLog.all)")
                #expect(!listenerLog.all.contains { $0.contains("handshake completed") }, "\(listenerLog.all)")
                await connection.close()
                await listener.close()
                await serving.value
            }
        }

        @Test("a failed handshake is logged at info with the connection number, the peer and the NSS error; two connections get two numbers")
        func failureAtInfo() async throws {
            try await withTimeout(seconds: 30) {
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(), logger: logger)
                let serving = Task { await EchoServer.serveAll(listener) }
                // The test CA did not sign the server's self-signed certificate.
                let trust = try await TLSTrust.pem(file: try await TestPKI.shared().caCertificate)
                let refused = await #expect(throws: TLSError.self) {
                    try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: .makeClientConfiguration(trust: trust), logger: logger)
                }
                #expect(refused != nil)
                let clientID = await Self.connectionID(in: log, ["debug connecting failed", "error=", "peer=127.0.0.1:\(listener.port)"])
                let serverID = await Self.connectionID(in: log, ["info handshake failed", "error=", "SSL_ERROR_", "peer=127.0.0.1:"])
                #expect(clientID != nil && serverID != nil && clientID != serverID, "\(log.all)")
                await listener.close()
                await serving.value
            }
        }

        @Test("rehandshakes are logged at debug on the connection's logger")
        func rehandshakeAtDebug() async throws {
            try await withTimeout(seconds: 30) {
                let (logger, log) = CapturingLogHandler.logger()
                var server = try await TestIdentities.serverConfiguration(max: .tls12)
                server.renegotiation = .localOnly
                let listener = try await TLSListener.bind(port: 0, configuration: server, logger: logger)
                let accepted = Task { () -> TLSConnection? in
                    for try await connection in listener { return connection }
                    return nil
                }
                var client = try await TestIdentities.clientConfiguration(max: .tls12)
                client.renegotiation = .localAndPeer
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                let reading = Task { for try await _ in connection.inbound {} }
                let serverSide = try #require(try await accepted.value)
                try await serverSide.rehandshake()
                let line = await log.waitForLine(containing: ["debug rehandshake completed", "connection=", "version=TLSv1.2"])
                #expect(line != nil, "\(log.all)")
                await serverSide.close()
                _ = try? await reading.value
                await connection.close()
                await listener.close()
            }
        }
    }
}
