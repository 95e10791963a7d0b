import AsyncNSS
import MetricsTestKit
import Testing

extension Integration {
    @Suite("Listener metrics (swift-metrics)")
    struct MetricsTests {
        @Test("connections, handshakes (by result and reason), rehandshakes, bytes and the handshake timer are counted")
        func listenerMetrics() async throws {
            try await withTimeout(seconds: 30) {
                let metrics = TestMetrics()
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(), metrics: metrics)
                let accepted = Task { () -> TLSConnection? in
                    for try await connection in listener { return connection }
                    return nil
                }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                let server = try #require(try await accepted.value)
                try await client.write(Array("12345".utf8))
                var received = 0
                while received < 5, let chunk = try await server.receive() { received += chunk.count }
                try await server.write(Array("abc".utf8))
                _ = try await client.receive()
                try await server.updateKeys(requestPeerUpdate: false)

                // A client that fails its handshake: wrong name.
                var wrongName = try await TestIdentities.clientConfiguration()
                wrongName.serverName = "wrong.example"
                _ = try? await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: wrongName)
                // The server learns of the failure from the client's alert, a
                // moment later; closing the listener first would abandon that
                // handshake instead of failing it.
                func failures() -> [TestCounter] {
                    metrics.counters(label: "asyncnss_handshakes_total").filter { counter in
                        counter.dimensions.contains { $0 == ("result", "failure") }
                    }
                }
                for _ in 0..<100 where failures().isEmpty { try await Task.sleep(for: .milliseconds(20)) }

                await client.close()
                await server.close()
                await listener.close()

                #expect(try metrics.expectCounter("asyncnss_connections_accepted_total").totalValue == 2)
                #expect(try metrics.expectCounter("asyncnss_handshakes_total", [("result", "success")]).totalValue == 1)
                #expect(failures().count == 1 && failures().first?.totalValue == 1, "\(failures().map(\.dimensions))")
                #expect(try metrics.expectCounter("asyncnss_rehandshakes_total", [("kind", "keyUpdate")]).totalValue == 1)
                #expect(try metrics.expectCounter("asyncnss_bytes_received_total").totalValue == 5)
                #expect(try metrics.expectCounter("asyncnss_bytes_sent_total").totalValue == 3)
                #expect(try metrics.expectTimer("asyncnss_handshake_duration").values.count == 1)
                // Both connections ended: nothing active, both closed.
                let closed = try metrics.expectCounter("asyncnss_connections_closed_total")
                for _ in 0..<50 where closed.totalValue < 2 { try await Task.sleep(for: .milliseconds(20)) }
                #expect(closed.totalValue == 2)
                #expect(try metrics.expectMeter("asyncnss_connections_active").lastValue == 0)
            }
        }

        @Test("a client counts its connections, handshakes by result, bytes and the handshake timer under asyncnss_client_")
        func clientMetrics() async throws {
            try await withTimeout(seconds: 30) {
                let metrics = TestMetrics()
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let serving = Task { await EchoServer.serveAll(listener) }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration(), metrics: metrics)
                try await client.write(Array("12345".utf8))
                var received = 0
                while received < 5, let chunk = try await client.receive() { received += chunk.count }
                var wrongName = try await TestIdentities.clientConfiguration()
                wrongName.serverName = "wrong.example"
                await #expect(throws: TLSError.self) {
                    try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: wrongName, metrics: metrics)
                }
                await client.close()

                #expect(try metrics.expectCounter("asyncnss_client_connections_opened_total").totalValue == 2)
                #expect(try metrics.expectCounter("asyncnss_client_connections_closed_total").totalValue == 2)
                #expect(try metrics.expectMeter("asyncnss_client_connections_active").lastValue == 0)
                #expect(try metrics.expectCounter("asyncnss_client_handshakes_total", [("result", "success")]).totalValue == 1)
                #expect(try metrics.expectCounter("asyncnss_client_handshakes_total", [("result", "failure"), ("reason", "SSL_ERROR_BAD_CERT_DOMAIN")]).totalValue == 1)
                #expect(try metrics.expectCounter("asyncnss_client_bytes_sent_total").totalValue == 5)
                #expect(try metrics.expectCounter("asyncnss_client_bytes_received_total").totalValue == 5)
                #expect(try metrics.expectTimer("asyncnss_client_handshake_duration").values.count == 1)
                await listener.close()
                await serving.value
            }
        }
    }
}
