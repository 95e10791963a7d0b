import AsyncNSS
import AsyncNSSServiceLifecycle
import Logging
import ServiceLifecycle
import Testing

extension Integration {
    @Suite("TLSServer in a ServiceGroup")
    struct ServiceLifecycleTests {
        @Test("a graceful shutdown stops accepting, lets a handler finish within the grace period and cancels the one that does not")
        func gracefulShutdown() async throws {
            try await withTimeout(seconds: 60) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let (logger, log) = CapturingLogHandler.logger()
                // A handler echoes; after "bye" it answers and returns.
                let server = TLSServer(listener: listener, gracePeriod: .milliseconds(600), logger: logger) { connection in
                    while let chunk = try await connection.receive() {
                        try await connection.write(chunk)
                        if chunk == Array("bye".utf8) { return }
                    }
                }
                let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: server)], logger: logger))
                let running = Task { try await group.run() }

                let client = try await TestIdentities.clientConfiguration()
                let polite = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                let lingering = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                for connection in [polite, lingering] {
                    try await connection.write([1])
                    #expect(try await connection.receive() == [1])
                }

                await group.triggerGracefulShutdown()
                // Within the grace period a handler still works, and finishes.
                try await polite.write(Array("bye".utf8))
                #expect(try await polite.receive() == Array("bye".utf8))
                #expect(try await polite.receive() == nil)
                // The lingering one is cancelled when the period is over and
                // its connection closed with close_notify.
                #expect(try await lingering.receive() == nil)
                try await running.value
                #expect(listener.openConnectionCount == 0)
                #expect(await log.waitForLine(containing: ["grace period over"]) != nil, "\(log.all)")
                await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                }
                await polite.close()
                await lingering.close()
            }
        }
    }
}
