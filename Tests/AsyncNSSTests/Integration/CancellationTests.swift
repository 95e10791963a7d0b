import AsyncNSS
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    @Suite("Cancellation returns promptly and closes")
    struct CancellationTests {
        /// A connected pair: our client and the server side of it.
        private func pair() async throws -> (TLSListener, TLSConnection, TLSConnection) {
            let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
            async let serverSide: TLSConnection? = {
                for try await connection in listener { return connection }
                return nil
            }()
            let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
            guard let server = try await serverSide else { throw TLSError(kind: .closed, operation: "test", message: "no connection") }
            return (listener, client, server)
        }

        /// Runs `operation` in a task, cancels it after `delay`, and checks
        /// that it throws CancellationError well before any timeout would (5 s,
        /// generous for a loaded machine: a working cancel takes milliseconds).
        private func expectPromptCancellation(after delay: Duration = .milliseconds(200), _ operation: @escaping @Sendable () async throws -> Void) async throws {
            let task = Task { try await operation() }
            try await Task.sleep(for: delay)
            let cancelledAt = ContinuousClock.now
            task.cancel()
            let result = await task.result
            let elapsed = ContinuousClock.now - cancelledAt
            #expect(throws: CancellationError.self) { try result.get() }
            #expect(elapsed < .seconds(5), "cancellation took \(elapsed)")
        }

        @Test("a read")
        func read() async throws {
            try await withTimeout(seconds: 30) {
                let (listener, client, server) = try await pair()
                let before = FileDescriptors.count()
                try await expectPromptCancellation {
                    for try await _ in client.inbound {}
                }
                #expect(await FileDescriptors.settle(at: before - 1) == before - 1)
                // The peer sees the close.
                var iterator = server.inbound.makeAsyncIterator()
                #expect(try await iterator.next() == nil)
                await server.close()
                await listener.close()
            }
        }

        @Test("a write blocked by a peer that does not read")
        func write() async throws {
            try await withTimeout(seconds: 30) {
                let (listener, client, server) = try await pair()
                let before = FileDescriptors.count()
                try await expectPromptCancellation(after: .milliseconds(500)) {
                    let block = [UInt8](repeating: 7, count: 1 << 20)
                    for _ in 0..<1024 { try await client.write(block) }
                }
                #expect(await FileDescriptors.settle(at: before - 1) == before - 1)
                await server.close()
                await listener.close()
            }
        }

        @Test("a write waiting for another write's turn")
        func queuedWrite() async throws {
            try await withTimeout(seconds: 30) {
                let (listener, client, server) = try await pair()
                // One write far larger than the socket buffers (the peer does
                // not read) holds the turn until it is cancelled. (Many 1 MiB
                // writes, as before, let the turn pass between them, and on a
                // slow run the queued write got it before the buffers filled.)
                let holder = Task {
                    try await client.write([UInt8](repeating: 1, count: 64 << 20))
                }
                try await Task.sleep(for: .milliseconds(300))
                try await expectPromptCancellation {
                    try await client.write([2])
                }
                holder.cancel()
                _ = await holder.result
                await server.close()
                await listener.close()
            }
        }

        @Test("a rehandshake that the peer never answers: prompt, and the connection is closed")
        func rehandshake() async throws {
            try await withTimeout(seconds: 30) {
                var server = try await TestIdentities.serverConfiguration(max: .tls12)
                server.renegotiation = .localOnly
                let listener = try await TLSListener.bind(port: 0, configuration: server)
                async let serverSide: TLSConnection? = {
                    for try await connection in listener { return connection }
                    return nil
                }()
                // The client never reads, so its NSS never sees the HelloRequest.
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration(max: .tls12))
                let connection = try #require(try await serverSide)
                try await expectPromptCancellation {
                    try await connection.rehandshake()
                }
                await #expect(throws: (any Error).self, "the cancelled rehandshake closed the connection") {
                    try await connection.write([1])
                }
                await client.close()
                await listener.close()
            }
        }

        @Test("cancelling the task group that serves a listener closes the listener and every connection")
        func servingTaskGroup() async throws {
            try await withTimeout(seconds: 30) {
                let before = FileDescriptors.count()
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let port = listener.port
                let server = Task {
                    try await withThrowingDiscardingTaskGroup { group in
                        for try await connection in listener {
                            group.addTask {
                                try await connection.executeThenClose { connection in
                                    for try await chunk in connection.inbound { try await connection.write(chunk) }
                                }
                            }
                        }
                    }
                }
                var clients: [TLSConnection] = []
                for index in 0..<3 {
                    let client = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: try await TestIdentities.clientConfiguration())
                    try await client.write([UInt8(index)])
                    #expect(try await client.receive() == [UInt8(index)])
                    clients.append(client)
                }
                let cancelledAt = ContinuousClock.now
                server.cancel()
                let result = await server.result
                #expect(ContinuousClock.now - cancelledAt < .seconds(5))
                #expect(throws: CancellationError.self) { try result.get() }
                for client in clients {
                    // The cancelled server closed its connections with
                    // close_notify: the client sees a clean end, not an error.
                    #expect(try await client.receive() == nil)
                    await client.close()
                }
                #expect(throws: (any Error).self, "the port is closed") { try RawTCP(port: port).close() }
                #expect(await FileDescriptors.settle(at: before) == before)
            }
        }

        @Test("an accept")
        func accept() async throws {
            try await withTimeout(seconds: 30) {
                let before = FileDescriptors.count()
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                #expect(FileDescriptors.count() > before)
                try await expectPromptCancellation {
                    for try await _ in listener {}
                }
                #expect(await FileDescriptors.settle(at: before) == before)
                // The port is closed.
                #expect(throws: (any Error).self) { try RawTCP(port: listener.port).close() }
            }
        }

        @Test("a client handshake with a server that never answers")
        func clientHandshake() async throws {
            try await withTimeout(seconds: 30) {
                let silent = try SilentServer()
                let before = FileDescriptors.count()
                let port = silent.port
                try await expectPromptCancellation(after: .milliseconds(300)) {
                    _ = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: try await TestIdentities.clientConfiguration())
                }
                #expect(await FileDescriptors.settle(at: before) == before)
                silent.close()
            }
        }

        @Test("a server handshake times out and the listener goes on")
        func serverHandshakeTimeout() async throws {
            try await withTimeout(seconds: 30) {
                var configuration = try await TestIdentities.serverConfiguration()
                configuration.handshakeTimeout = .milliseconds(300)
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: configuration, logger: logger)
                let server = Task { await EchoServer.serveAll(listener) }
                let port = listener.port
                let before = FileDescriptors.count()
                let stalled = try await onOwnThread { try RawTCP(port: port) }
                let line = await log.waitForLine(containing: ["handshake failed", "did not complete within"])
                #expect(line != nil, "\(log.all)")
                // Only the stalled peer's own socket is still open, on its side.
                #expect(await FileDescriptors.settle(at: before + 1) == before + 1)
                stalled.close()
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: try await TestIdentities.clientConfiguration())
                await client.close()
                await listener.close()
                await server.value
            }
        }

        @Test("closing the listener ends the sequence without an error")
        func listenerClose() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let iteration = Task { () -> Int in
                    var count = 0
                    for try await connection in listener {
                        count += 1
                        await connection.close()
                    }
                    return count
                }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                await client.close()
                try await Task.sleep(for: .milliseconds(100))
                await listener.close()
                #expect(try await iteration.value == 1)
            }
        }
    }
}

/// A TCP listener that completes the TCP handshake (in the kernel) but never
/// accepts or speaks.
struct SilentServer {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        listen(fd, 16)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { Glibc.close(fd) }
}
