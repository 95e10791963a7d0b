import AsyncNSS
import Testing

extension Integration {
    @Suite("Connection limits and idle timeout")
    struct LimitsTests {
        @Test("at maximumConnections the listener stops accepting, and resumes once a connection closes")
        func maximumConnections() async throws {
            try await withTimeout(seconds: 60) {
                var configuration = try await TestIdentities.serverConfiguration()
                configuration.maximumConnections = 3
                let listener = try await TLSListener.bind(port: 0, configuration: configuration)
                let server = Task { await EchoServer.serveAll(listener) }
                let client = try await TestIdentities.clientConfiguration()
                var held: [TLSConnection] = []
                for _ in 0..<3 {
                    let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                    try await connection.write([1])
                    #expect(try await connection.receive() == [1])
                    held.append(connection)
                }
                // A fourth client's TCP connect succeeds (the kernel's backlog),
                // but nobody accepts it, so its handshake cannot finish.
                var impatient = client
                impatient.handshakeTimeout = .milliseconds(700)
                let refused = await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: impatient)
                }
                #expect(refused?.kind == .handshakeTimedOut, "\(String(describing: refused))")

                // One closes; the next client gets in.
                await held.removeFirst().close()
                let next = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                try await next.write([2])
                #expect(try await next.receive() == [2])
                await next.close()
                for connection in held { await connection.close() }
                await listener.close()
                await server.value
            }
        }

        @Test("a connection dropped without close() gives its slot back")
        func droppedConnectionReleasesSlot() async throws {
            try await withTimeout(seconds: 60) {
                var configuration = try await TestIdentities.serverConfiguration()
                configuration.maximumConnections = 1
                let listener = try await TLSListener.bind(port: 0, configuration: configuration)
                let client = try await TestIdentities.clientConfiguration()
                for round in 0..<3 {
                    let accepted = Task { () -> Bool in
                        for try await _ in listener { return true }  // the connection is dropped here
                        return false
                    }
                    let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                    #expect(try await accepted.value, "round \(round)")
                    await connection.close()
                }
                await listener.close()
            }
        }

        @Test("idleTimeout closes a quiet connection with close_notify and spares a busy one")
        func idleTimeout() async throws {
            try await withTimeout(seconds: 60) {
                var configuration = try await TestIdentities.serverConfiguration()
                configuration.idleTimeout = .milliseconds(800)
                let listener = try await TLSListener.bind(port: 0, configuration: configuration)
                // The idle close ends the quiet connection's pending read with `closed`.
                let server = Task { await EchoServer.serveAll(listener, expected: { ($0 as? TLSError)?.kind == .closed }) }
                let client = try await TestIdentities.clientConfiguration()
                let quiet = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                let busy = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                // The busy one talks every 100 ms for longer than the timeout.
                for round in 0..<12 {
                    try await busy.write([UInt8(round)])
                    #expect(try await busy.receive() == [UInt8(round)])
                    try await Task.sleep(for: .milliseconds(100))
                }
                // By now the server has closed the quiet one, cleanly.
                #expect(try await quiet.receive() == nil)
                try await busy.write([99])
                #expect(try await busy.receive() == [99])
                await quiet.close()
                await busy.close()
                await listener.close()
                await server.value
            }
        }

        @Test("the limits are checked")
        func invalidLimits() async throws {
            try await withTimeout(seconds: 30) {
                var zero = try await TestIdentities.serverConfiguration()
                zero.maximumConnections = 0
                await #expect(throws: TLSError.self) { _ = try await TLSListener.bind(port: 0, configuration: zero) }
                var negative = try await TestIdentities.serverConfiguration()
                negative.idleTimeout = .zero
                await #expect(throws: TLSError.self) { _ = try await TLSListener.bind(port: 0, configuration: negative) }
            }
        }
    }
}
