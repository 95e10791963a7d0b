@testable import AsyncNSS
import Synchronization
import Testing

extension Integration {
    @Suite("TLSListener.serve: handlers on their connections' loops")
    struct ServeTests {
        @Test("serve runs each handler on its connection's loop, closes the connection after it, and returns after close() and the last handler")
        func servesOnTheLoop() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let offLoop = Atomic<Int>(0)
                let served = Atomic<Int>(0)
                let serving = Task {
                    await listener.serve { connection in
                        if !connection.pollLoop.jobs.isRunnerThread { offLoop.add(1, ordering: .relaxed) }
                        while let chunk = try await connection.receive() {
                            if !connection.pollLoop.jobs.isRunnerThread { offLoop.add(1, ordering: .relaxed) }
                            try await connection.write(chunk)
                            // One answer each: the connection closes when the handler returns.
                            served.add(1, ordering: .relaxed)
                            return
                        }
                    }
                }
                for round in 0..<20 {
                    let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                    try await client.write([UInt8(round)])
                    #expect(try await client.receive() == [UInt8(round)])
                    // The server's close_notify ends the stream cleanly.
                    #expect(try await client.receive() == nil)
                    await client.close()
                }
                await listener.close()
                await serving.value
                #expect(served.load(ordering: .relaxed) == 20)
                #expect(offLoop.load(ordering: .relaxed) == 0)
                #expect(listener.openConnectionCount == 0)
            }
        }

        @Test("cancelling serve closes the listener, cancels the running handlers and returns after them")
        func cancellingServe() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let started = Atomic<Int>(0)
                let ended = Mutex<[String]>([])
                let serving = Task {
                    await listener.serve { connection in
                        started.add(1, ordering: .relaxed)
                        do {
                            // Waits for a request that never comes.
                            _ = try await connection.receive()
                            ended.withLock { $0.append("returned") }
                        } catch {
                            ended.withLock { $0.append("\(type(of: error))") }
                            throw error
                        }
                    }
                }
                var clients: [TLSConnection] = []
                for _ in 0..<3 {
                    clients.append(try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration()))
                }
                while started.load(ordering: .relaxed) < 3 { try await Task.sleep(for: .milliseconds(5)) }
                serving.cancel()
                await serving.value
                #expect(ended.withLock { $0 } == ["CancellationError", "CancellationError", "CancellationError"])
                // The listener is closed: a new client is refused.
                await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                }
                for client in clients { await client.close() }
            }
        }

        @Test("closing the listener abandons the handshakes that serve started and leaves the running handlers running")
        func closeAbandonsHandshakesOnly() async throws {
            try await withTimeout(seconds: 15) {
                var configuration = try await TestIdentities.serverConfiguration()
                // Far beyond the test's timeout: close() must not wait for it.
                configuration.handshakeTimeout = .seconds(60)
                let listener = try await TLSListener.bind(port: 0, configuration: configuration)
                let handlers = Atomic<Int>(0)
                let serving = Task {
                    await listener.serve { connection in
                        handlers.add(1, ordering: .relaxed)
                        while let chunk = try await connection.receive() { try await connection.write(chunk) }
                    }
                }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                try await client.write([1])
                #expect(try await client.receive() == [1])
                // A peer that never sends its ClientHello: its handshake waits.
                let silent = try await TCPConnection.connect(host: "127.0.0.1", port: listener.port)
                try await Task.sleep(for: .milliseconds(200))

                await listener.close()
                // The abandoned handshake closed its socket: the peer sees the end.
                let ending: [UInt8]?
                do { ending = try await silent.receive() } catch { ending = nil }
                #expect(ending == nil)
                await silent.close()
                // The handler that ran goes on after the close.
                try await client.write([2])
                #expect(try await client.receive() == [2])
                await client.close()
                await serving.value
                #expect(handlers.load(ordering: .relaxed) == 1)
                #expect(listener.openConnectionCount == 0)
            }
        }
    }
}
