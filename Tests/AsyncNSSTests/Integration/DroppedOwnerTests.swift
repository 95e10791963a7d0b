@testable import AsyncNSS
import Foundation
import Testing

extension Integration {
    /// Every socket has one owner, and dropping the owner without `close()`
    /// closes the socket: descriptors, registered resources and callback
    /// contexts come back to where they were.
    @Suite("Owners dropped without close() free their sockets")
    struct DroppedOwnerTests {
        @Test("200 client connections dropped without close()", arguments: [nil, Duration.seconds(120)])
        func droppedClients(idleTimeout: Duration?) async throws {
            try await withTimeout(seconds: 60) {
                var serverConfiguration = try await TestIdentities.serverConfiguration()
                serverConfiguration.idleTimeout = idleTimeout
                let listener = try await TLSListener.bind(port: 0, configuration: serverConfiguration)
                let server = Task { await EchoServer.serveAll(listener) }
                var clientConfiguration = try await TestIdentities.clientConfiguration()
                clientConfiguration.idleTimeout = idleTimeout
                try await Self.roundTrip(port: listener.port, clientConfiguration)
                let baseline = await LeakBaseline.take()
                for _ in 0..<200 {
                    let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: clientConfiguration)
                    try await client.write([7])
                    var iterator = client.inbound.makeAsyncIterator()
                    #expect(try await iterator.next() == [7])
                }
                // Each server connection ends when its client's close_notify
                // arrives, so the whole count comes back only if the clients closed.
                try await baseline.expectReached(within: .seconds(3))
                await listener.close()
                await server.value
            }
        }

        @Test("100 accepted connections dropped without close()", arguments: [nil, Duration.seconds(120)])
        func droppedAcceptedConnections(idleTimeout: Duration?) async throws {
            try await withTimeout(seconds: 60) {
                var serverConfiguration = try await TestIdentities.serverConfiguration()
                serverConfiguration.idleTimeout = idleTimeout
                let listener = try await TLSListener.bind(port: 0, configuration: serverConfiguration)
                let server = Task {
                    var count = 0
                    for try await connection in listener {
                        count += 1
                        _ = connection.remoteAddress
                    }
                    return count
                }
                let clientConfiguration = try await TestIdentities.clientConfiguration()
                try await Self.expectClosedByServer(port: listener.port, clientConfiguration)
                let baseline = await LeakBaseline.take()
                for _ in 0..<100 {
                    try await Self.expectClosedByServer(port: listener.port, clientConfiguration)
                }
                try await baseline.expectReached(within: .seconds(3))
                await listener.close()
                #expect(try await server.value == 101)
            }
        }

        @Test("a connection held only by a cancelled reader closes")
        func heldOnlyByCancelledReader() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let server = Task { await EchoServer.serveAll(listener) }
                let clientConfiguration = try await TestIdentities.clientConfiguration()
                try await Self.roundTrip(port: listener.port, clientConfiguration)
                let baseline = await LeakBaseline.take()
                var readers: [Task<Void, any Error>] = []
                for _ in 0..<20 {
                    let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: clientConfiguration)
                    readers.append(Task { for try await _ in client.inbound {} })
                }
                try await Task.sleep(for: .milliseconds(100))
                for reader in readers { reader.cancel() }
                for reader in readers {
                    await #expect(throws: CancellationError.self) { try await reader.value }
                }
                readers.removeAll()
                try await baseline.expectReached(within: .seconds(3))
                await listener.close()
                await server.value
            }
        }

        /// A server that accepts early data hands a connection over when its
        /// early data arrives, and a task of its own finishes the handshake.
        /// The application drops each connection while that task still waits
        /// for the client's Finished, which the proxy holds back.
        @Test("connections handed over at their early data and dropped while their handshake finishes")
        func droppedDuringEarlyHandshake() async throws {
            try await withTimeout(seconds: 60) {
                let identity = try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])
                var serverConfiguration = TLSConfiguration.makeServerConfiguration(identity: identity)
                let window = Duration.milliseconds(300)
                serverConfiguration.earlyData = .accept(maximumSize: 4096, antiReplayWindow: window)
                let listener = try await TLSListener.bind(port: 0, configuration: serverConfiguration)
                let server = Task { () -> [Int] in
                    var earlyByteCounts: [Int] = []
                    for try await connection in listener {
                        // The early data of a resumed client; the request otherwise.
                        var iterator = connection.inbound.makeAsyncIterator()
                        _ = try? await iterator.next()
                        earlyByteCounts.append(connection.earlyDataByteCount)
                        // Dropped here, without close().
                    }
                    return earlyByteCounts
                }
                try await Task.sleep(for: window + .milliseconds(200))
                let rounds = 10
                // Every connection goes through the proxy, which the client's
                // session cache knows by its address.
                let proxy = try await EarlyDataTests.delayingProxy(to: listener.port, connections: rounds + 1)
                let clientConfiguration = EarlyDataTests.client(for: identity)
                do {
                    // A full handshake, for the ticket; the client reads it
                    // with the close that follows the server's drop.
                    let first = try await TLSConnection.connect(host: "127.0.0.1", port: proxy.port, configuration: clientConfiguration)
                    try await first.write(Array("first\n".utf8))
                    var iterator = first.inbound.makeAsyncIterator()
                    _ = try? await iterator.next()
                }
                let baseline = await LeakBaseline.take()
                for round in 0..<rounds {
                    // The server may drop the connection before or after the
                    // client's handshake returns: either way is fine here.
                    if let client = try? await TLSConnection.connect(host: "127.0.0.1", port: proxy.port, configuration: clientConfiguration, earlyData: Array("request \(round)\n".utf8)) {
                        var iterator = client.inbound.makeAsyncIterator()
                        _ = try? await iterator.next()
                    }
                }
                _ = try await proxy.relay.value
                await listener.close()
                let earlyByteCounts = try await server.value
                #expect(earlyByteCounts.count == rounds + 1)
                // Each connection after the first was handed over at its early data.
                #expect(earlyByteCounts.dropFirst().allSatisfy { $0 > 0 }, "early bytes per connection: \(earlyByteCounts)")
                try await baseline.expectReached(within: .seconds(3))
                await proxy.listener.close()
            }
        }

        @Test("clients whose handshake failed leave nothing behind")
        func failedHandshakes() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let server = Task { await EchoServer.serveAll(listener) }
                let clientConfiguration = try await TestIdentities.clientConfiguration()
                try await Self.roundTrip(port: listener.port, clientConfiguration)
                // The system roots do not know the test's self-signed certificate.
                let untrusting = TLSConfiguration.makeClientConfiguration()
                let baseline = await LeakBaseline.take()
                for _ in 0..<20 {
                    await #expect(throws: TLSError.self) {
                        _ = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: untrusting)
                    }
                }
                try await baseline.expectReached(within: .seconds(3))
                await listener.close()
                await server.value
            }
        }

        /// A rehandshake waits while the reader drives NSS, and each read
        /// interrupts it; interruptions that arrive after its wait ended must
        /// not stay behind in the poll loop.
        @Test("renegotiations while the peer reads leave no poll state behind")
        func rehandshakesLeaveNoPollState() async throws {
            try await withTimeout(seconds: 60) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(min: .tls12, max: .tls12))
                let clientConfiguration = try await TestIdentities.clientConfiguration(min: .tls12, max: .tls12)
                let baseline = await LeakBaseline.take()
                let server = Task { () -> Int in
                    var renegotiations = 0
                    for try await connection in listener {
                        for round in 0..<20 {
                            _ = try await connection.rehandshake()
                            renegotiations += 1
                            try await connection.write([UInt8(round)])
                        }
                        await connection.close()
                        return renegotiations
                    }
                    return renegotiations
                }
                // In a function of its own, so that the connection is released when it returns.
                func readAll() async throws -> [UInt8] {
                    let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: clientConfiguration)
                    var received: [UInt8] = []
                    for try await chunk in client.inbound { received += chunk }
                    await client.close()
                    return received
                }
                #expect(try await readAll() == Array(0..<20))
                #expect(try await server.value == 20)
                await listener.close()
                try await baseline.expectReached(within: .seconds(3))
            }
        }

        @Test("TLS and TCP listeners dropped without close()")
        func droppedListeners() async throws {
            try await withTimeout(seconds: 30) {
                let serverConfiguration = try await TestIdentities.serverConfiguration()
                let warmUp = try await TLSListener.bind(port: 0, configuration: serverConfiguration)
                await warmUp.close()
                let baseline = await LeakBaseline.take()
                for _ in 0..<10 {
                    let listener = try await TLSListener.bind(port: 0, configuration: serverConfiguration)
                    #expect(listener.port > 0)
                    let plain = try await TCPListener.bind(port: 0)
                    #expect(plain.port > 0)
                }
                try await baseline.expectReached(within: .seconds(3))
            }
        }

        @Test("TCP connections, before and after STARTTLS, dropped without close()", arguments: [TLSRole.client, .server])
        func droppedStartTLS(droppedRole: TLSRole) async throws {
            try await withTimeout(seconds: 30) {
                let serverConfiguration = try await TestIdentities.serverConfiguration()
                let clientConfiguration = try await TestIdentities.clientConfiguration()
                let listener = try await TCPListener.bind(port: 0)
                let baseline = await LeakBaseline.take()
                for round in 0..<10 {
                    async let acceptedPlain = listener.accept()
                    let client = try await TCPConnection.connect(host: "127.0.0.1", port: listener.port)
                    let server = try await acceptedPlain
                    if round % 2 == 0 {
                        // Plain connections, dropped before TLS starts.
                        continue
                    }
                    async let serverTLS = server.startTLS(serverConfiguration, role: .server)
                    let clientTLS = try await client.startTLS(clientConfiguration, role: .client)
                    let accepted = try await serverTLS
                    // The side under test is dropped; the other closes as an
                    // application would once the peer has gone.
                    let kept = droppedRole == .client ? accepted : clientTLS
                    _ = droppedRole == .client ? clientTLS : accepted
                    Task { [kept] in
                        do { for try await _ in kept.inbound {} } catch {}
                        await kept.close()
                    }
                }
                try await baseline.expectReached(within: .seconds(3))
                await listener.close()
            }
        }

        @Test("STARTTLS upgrades that failed leave nothing behind")
        func failedStartTLS() async throws {
            try await withTimeout(seconds: 30) {
                let serverConfiguration = try await TestIdentities.serverConfiguration()
                // The system roots do not know the test's self-signed certificate.
                let untrusting = TLSConfiguration.makeClientConfiguration()
                let listener = try await TCPListener.bind(port: 0)
                let baseline = await LeakBaseline.take()
                for _ in 0..<10 {
                    async let acceptedPlain = listener.accept()
                    let client = try await TCPConnection.connect(host: "localhost", port: listener.port)
                    let server = try await acceptedPlain
                    let serverTLS = Task { try await server.startTLS(serverConfiguration, role: .server) }
                    await #expect(throws: TLSError.self) { _ = try await client.startTLS(untrusting, role: .client) }
                    await #expect(throws: TLSError.self) { _ = try await serverTLS.value }
                }
                try await baseline.expectReached(within: .seconds(3))
                await listener.close()
            }
        }

        /// `NSSRuntime.shutdown()` closes every socket and then shuts NSS
        /// down: a close() that returned while another was still under way
        /// let NSS shut down under an open descriptor.
        @Test("a close() made while another is under way returns only once the descriptor is closed")
        func concurrentCloses() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let server = Task { await EchoServer.serveAll(listener) }
                let configuration = try await TestIdentities.clientConfiguration()
                for _ in 0..<20 {
                    let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: configuration)
                    let socket = await client.socket
                    await withTaskGroup(of: Bool.self) { group in
                        for _ in 0..<3 {
                            group.addTask {
                                await socket.close()
                                return socket.isClosed
                            }
                        }
                        for await closed in group { #expect(closed, "a close() returned before the descriptor was closed") }
                    }
                    await client.close()
                }
                await listener.close()
                await server.value
            }
        }

        private static func roundTrip(port: Int, _ configuration: TLSConfiguration) async throws {
            let client = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: configuration)
            try await client.write([42])
            var iterator = client.inbound.makeAsyncIterator()
            #expect(try await iterator.next() == [42])
            await client.close()
        }

        /// Connects and waits until the server, which drops the connection,
        /// has closed it with close_notify.
        private static func expectClosedByServer(port: Int, _ configuration: TLSConfiguration) async throws {
            let client = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: configuration)
            var iterator = client.inbound.makeAsyncIterator()
            #expect(try await iterator.next() == nil, "the server's dropped connection sends close_notify")
            await client.close()
        }
    }
}

/// What a leak would grow: the process's descriptors, the runtime's
/// registered resources (sockets, certificates, keys), the live NSS
/// callback contexts, the poll registrations and the wait IDs the poll loops
/// remember. Taken after a warm-up, compared at the end of a test.
struct LeakBaseline {
    let descriptors: Int
    let resources: Int
    let callbackContexts: Int
    let pollState: Int

    static func take() async -> LeakBaseline {
        let descriptors = await FileDescriptors.settle(at: 0, seconds: 0.2)
        return LeakBaseline(descriptors: descriptors, resources: Self.resourceCount(), callbackContexts: ConnectionCallbacks.liveCount, pollState: Self.pollStateCount())
    }

    private static func resourceCount() -> Int {
        (try? Runtime.shared.services().resources.count) ?? -1
    }

    private static func pollStateCount() -> Int {
        guard let group = try? Runtime.shared.services().pollGroup else { return -1 }
        return group.waitCount + group.rememberedCount
    }

    /// Waits up to `limit` for every count to come back, then expects each to have.
    func expectReached(within limit: Duration, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let deadline = ContinuousClock.now + limit
        var now = current()
        while !reached(now), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            now = current()
        }
        #expect(now.descriptors <= descriptors, "descriptors: \(now.descriptors), \(descriptors) before", sourceLocation: sourceLocation)
        #expect(now.resources <= resources, "registered resources: \(now.resources), \(resources) before", sourceLocation: sourceLocation)
        #expect(now.callbackContexts <= callbackContexts, "callback contexts: \(now.callbackContexts), \(callbackContexts) before", sourceLocation: sourceLocation)
        #expect(now.pollState <= pollState, "poll registrations and remembered wait IDs: \(now.pollState), \(pollState) before", sourceLocation: sourceLocation)
    }

    private func current() -> LeakBaseline {
        LeakBaseline(descriptors: FileDescriptors.count(), resources: Self.resourceCount(), callbackContexts: ConnectionCallbacks.liveCount, pollState: Self.pollStateCount())
    }

    private func reached(_ now: LeakBaseline) -> Bool {
        now.descriptors <= descriptors && now.resources <= resources && now.callbackContexts <= callbackContexts && now.pollState <= pollState
    }
}
