import AsyncNSS
import Testing

extension Integration {
    @Suite("Graceful shutdown of a listener")
    struct GracefulShutdownTests {
        @Test("stop accepting, let connections finish within the grace period, close the rest with close_notify, then shut NSS down cleanly")
        func gracefulShutdown() async throws {
            try await withTimeout(seconds: 60) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                // Each connection reads one line: "quick" is answered and closed;
                // anything else is echoed until the peer closes.
                let server = Task {
                    await withDiscardingTaskGroup { group in
                        do {
                            for try await connection in listener {
                                group.addTask {
                                    do {
                                        let first = try await connection.receive() ?? []
                                        try await connection.write(first)
                                        if first != Array("quick".utf8) {
                                            while let chunk = try await connection.receive() { try await connection.write(chunk) }
                                        }
                                    } catch {}
                                    await connection.close()
                                }
                            }
                        } catch {}
                    }
                }
                let client = try await TestIdentities.clientConfiguration()
                let quick = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                let slow = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                try await slow.write(Array("slow".utf8))
                #expect(try await slow.receive() == Array("slow".utf8))
                #expect(listener.openConnectionCount == 2)

                let shutdown = Task { await listener.shutdown(gracePeriod: .milliseconds(500)) }
                // The quick one finishes within the grace period.
                try await quick.write(Array("quick".utf8))
                #expect(try await quick.receive() == Array("quick".utf8))
                #expect(try await quick.receive() == nil)
                // The slow one is closed when it runs out, cleanly (close_notify).
                #expect(try await slow.receive() == nil)
                await shutdown.value
                #expect(listener.openConnectionCount == 0)
                await server.value
                // Nobody accepts any more.
                await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                }
                await quick.close()
                await slow.close()
                // Nothing is left behind: NSS shuts down without SEC_ERROR_BUSY.
                try await NSSRuntime.shutdown()
                await TestIdentities.reset()
            }
        }
    }
}
