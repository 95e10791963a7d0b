@testable import AsyncNSS
import Foundation
import Logging
import Synchronization
import Testing

extension Integration {
    /// The poll loops are the executors of the connections they poll.
    @Suite("Event loops: a connection runs on the loop that polls its socket")
    struct EventLoopTests {
        /// Whether the caller runs on `connection`'s loop.
        private static func onLoop(of connection: TLSConnection) -> Bool {
            connection.pollLoop.jobs.isRunnerThread
        }

        @Test("a connection's actor, and a handler that prefers its executor, run on its socket's loop, before and after every wait")
        func runsOnItsLoop() async throws {
            try await withTimeout(seconds: 30) {
                let pair = try await ConnectedPair.make(server: try await TestIdentities.serverConfiguration(), client: try await TestIdentities.clientConfiguration())
                #expect(await pair.server.isOnItsLoop())
                #expect(await pair.client.isOnItsLoop())
                #expect(!Self.onLoop(of: pair.server), "the test itself runs on the cooperative pool")
                let server = pair.server
                let echo = Task(executorPreference: server.executor) { () -> Int in
                    var offLoop = 0
                    if !Self.onLoop(of: server) { offLoop += 1 }
                    while let chunk = try await server.receive() {
                        if !Self.onLoop(of: server) { offLoop += 1 }
                        try await server.write(chunk)
                        if !Self.onLoop(of: server) { offLoop += 1 }
                    }
                    return offLoop
                }
                for round in 0..<50 {
                    try await pair.client.write([UInt8(round)])
                    #expect(try await pair.client.receive() == [UInt8(round)])
                }
                await pair.client.close()
                #expect(try await echo.value == 0)
                await pair.close()
            }
        }

        @Test("a handler on its connection's loop crosses no thread per read; one on the cooperative pool crosses for each")
        func noCrossingPerRead() async throws {
            try await withTimeout(seconds: 60) {
                let rounds = 200
                func wakeupsForJobs(handlerOnLoop: Bool) async throws -> Int {
                    let pair = try await ConnectedPair.make(server: try await TestIdentities.serverConfiguration(), client: try await TestIdentities.clientConfiguration())
                    let server = pair.server, client = pair.client
                    let echo = Task(executorPreference: handlerOnLoop ? server.executor : nil) { try await EchoServer.echo(server) }
                    // The client's task runs on its own connection's loop too,
                    // so that only the handler's placement differs.
                    let before = server.pollLoop.jobs.wakeups + client.pollLoop.jobs.wakeups
                    let exchange = Task(executorPreference: client.executor) {
                        for round in 0..<rounds {
                            try await client.write([UInt8(truncatingIfNeeded: round)])
                            guard try await client.receive() == [UInt8(truncatingIfNeeded: round)] else { return false }
                        }
                        return true
                    }
                    #expect(try await exchange.value)
                    let wakeups = server.pollLoop.jobs.wakeups + client.pollLoop.jobs.wakeups - before
                    await pair.finish(echo: echo, echoing: server)
                    return wakeups
                }
                let onLoop = try await wakeupsForJobs(handlerOnLoop: true)
                let onPool = try await wakeupsForJobs(handlerOnLoop: false)
                // On the loop, a round trip is a write and a resumed wait on
                // the same thread: no job comes from another thread.
                #expect(onLoop < rounds / 20, "\(onLoop) wakeups for \(rounds) round trips with the handler on the loop")
                // On the pool, each read and write of the handler is a job
                // sent to the loop from another thread.
                #expect(onPool >= rounds / 2, "\(onPool) wakeups for \(rounds) round trips with the handler on the pool")
            }
        }

        /// A wait made isolated to the connection is one job on its loop:
        /// the poll resumes it. It used to be three: the wait entered the
        /// closure of `withTaskCancellationHandler`, which was nonisolated,
        /// so the task hopped to the loop as a task executor, was resumed
        /// there, and hopped back to the connection.
        @Test("code isolated to its connection costs its loop one job per wait for a read, and no thread crossing")
        func isolatedWaitIsOneJob() async throws {
            try await withTimeout(seconds: 60) {
                let rounds = 200
                let pair = try await ConnectedPair.make(server: try await TestIdentities.serverConfiguration(), client: try await TestIdentities.clientConfiguration())
                let server = pair.server, client = pair.client
                let echo = Task(executorPreference: server.executor) { try await Self.echo(server, rounds: rounds) }
                let wakeupsBefore = server.pollLoop.jobs.wakeups + client.pollLoop.jobs.wakeups
                let jobsBefore = server.pollLoop.jobs.added + (server.pollLoop === client.pollLoop ? 0 : client.pollLoop.jobs.added)
                let exchange = Task(executorPreference: client.executor) { try await Self.exchange(client, rounds: rounds) }
                #expect(try await exchange.value)
                let wakeups = server.pollLoop.jobs.wakeups + client.pollLoop.jobs.wakeups - wakeupsBefore
                let jobs = server.pollLoop.jobs.added + (server.pollLoop === client.pollLoop ? 0 : client.pollLoop.jobs.added) - jobsBefore
                await pair.finish(echo: echo, echoing: server)
                // Each round trip: the server's read waits once, and the
                // client's, isolated to its connection too, once.
                #expect(jobs <= 2 * rounds + rounds / 10, "\(jobs) jobs for \(rounds) round trips: more than one per wait")
                #expect(wakeups < rounds / 20, "\(wakeups) jobs came from other threads in \(rounds) round trips")
            }
        }

        /// A listener's accept loop is isolated to the listening socket's
        /// loop (``LoopIsolation``), so a wait for the next connection costs
        /// that loop the one job that resumes it. It used to be nine: the
        /// accept loop's body was nonisolated, so each await in it left the
        /// loop's serial executor for the generic one and came back.
        @Test("a listener's wait for the next connection costs its loop one job")
        func acceptWaitIsOneJob() async throws {
            try await withTimeout(seconds: 60) {
                let connections = 30
                // Quiet: every handshake fails when its client closes.
                let quiet = Logger(label: "accept-wait", factory: { _ in SwiftLogNoOpLogHandler() })
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(), logger: quiet)
                let loop = await listener.listeningSocket.pollLoop
                var clients: [TCPConnection] = []
                let before = loop.jobs.added
                for _ in 0..<connections {
                    // Silent TCP clients: each accepted socket's handshake
                    // starts and waits for a ClientHello that never comes.
                    clients.append(try await TCPConnection.connect(host: "127.0.0.1", port: listener.port))
                    // Time for the accept loop to take it and wait again, so
                    // that every connection costs a wait of its own.
                    try await Task.sleep(for: .milliseconds(10))
                }
                let jobs = loop.jobs.added - before
                for client in clients { await client.close() }
                await listener.close()
                // Per connection: the accept loop's resumed wait, and the
                // start of the handshake's task when it runs on this loop.
                #expect(jobs <= 3 * connections, "\(jobs) jobs on the listening loop for \(connections) accepted connections")
            }
        }

        /// Sends `rounds` one-byte messages and checks each echo, isolated to `connection`.
        private static func exchange(_ connection: isolated TLSConnection, rounds: Int) async throws -> Bool {
            for round in 0..<rounds {
                try await connection.write([UInt8(truncatingIfNeeded: round)])
                guard try await connection.receive() == [UInt8(truncatingIfNeeded: round)] else { return false }
            }
            return true
        }

        /// Echoes `rounds` messages, isolated to `connection`.
        private static func echo(_ connection: isolated TLSConnection, rounds: Int) async throws {
            for _ in 0..<rounds {
                guard let bytes = try await connection.receive() else { return }
                try await connection.write(bytes)
            }
        }

        @Test("a loop blocked by user code delays only its own connections")
        func blockedLoopDelaysOnlyItsOwn() async throws {
            try await withTimeout(seconds: 60) {
                // Three hot loops and the cold thread, whatever the machine.
                // Sockets take the loops in turn, a client's then its server's,
                // so with three loops some pair has neither on a given loop.
                try await NSSRuntime.shutdown()
                await TestIdentities.reset()
                var options = NSSRuntime.Options()
                options.pollThreads = 4
                try NSSRuntime.initialize(options)

                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let (accepted, delivery) = AsyncStream.makeStream(of: TLSConnection.self)
                let server = Task {
                    await withDiscardingTaskGroup { group in
                        do {
                            for try await connection in listener {
                                delivery.yield(connection)
                                group.addTask(executorPreference: connection.executor) {
                                    do { try await EchoServer.echo(connection) } catch { Issue.record(error, "echo") }
                                }
                            }
                        } catch {
                            Issue.record(error, "the listener failed")
                        }
                    }
                    delivery.finish()
                }
                var arrivals = accepted.makeAsyncIterator()
                var pairs: [(client: TLSConnection, server: TLSConnection)] = []
                for _ in 0..<6 {
                    let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                    pairs.append((client, try #require(await arrivals.next())))
                }
                let blockedLoop = pairs[0].server.pollLoop
                let victim = pairs[0]
                let bystander = try #require(pairs.first { $0.client.pollLoop !== blockedLoop && $0.server.pollLoop !== blockedLoop },
                                             "some pair has neither side on the blocked loop")

                let blocking = Atomic<Bool>(false), unblocked = Atomic<Bool>(false)
                let blocker = Task(executorPreference: victim.server.executor) {
                    blocking.store(true, ordering: .sequentiallyConsistent)
                    usleep(2_000_000)   // user code that blocks its loop
                    unblocked.store(true, ordering: .sequentiallyConsistent)
                }
                while !blocking.load(ordering: .sequentiallyConsistent) { try await Task.sleep(for: .milliseconds(1)) }

                // The other loop serves its connection meanwhile,
                try await bystander.client.write([1])
                #expect(try await bystander.client.receive() == [1])
                let bystanderWaited = unblocked.load(ordering: .sequentiallyConsistent)
                #expect(!bystanderWaited, "the bystander's round trip waited for the blocked loop")
                // and the blocked loop's connection waits for its loop.
                try await victim.client.write([2])
                #expect(try await victim.client.receive() == [2])
                let victimWaited = unblocked.load(ordering: .sequentiallyConsistent)
                #expect(victimWaited, "the victim was served while its loop was blocked")
                await blocker.value

                for pair in pairs { await pair.client.close() }
                await listener.close()
                await server.value
                try await NSSRuntime.shutdown()
                await TestIdentities.reset()
            }
        }

        @Test("NSSRuntime.shutdown() from a task on a loop returns; connections whose loop stopped still answer; the runtime starts again")
        func shutdownFromALoop() async throws {
            try await withTimeout(seconds: 30) {
                let pair = try await ConnectedPair.make(server: try await TestIdentities.serverConfiguration(), client: try await TestIdentities.clientConfiguration())
                // The loop that runs this task is stopped and joined by the
                // shutdown it runs: another thread joins it.
                try await Task(executorPreference: pair.server.executor) { try await NSSRuntime.shutdown() }.value
                await TestIdentities.reset()
                #expect(!NSSRuntime.isInitialized)
                // The actors' loops are gone; their jobs run on the queue after them.
                await #expect(throws: TLSError.self) { try await pair.client.write([1]) }
                await pair.close()
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                #expect(NSSRuntime.isInitialized)
                await listener.close()
            }
        }
    }
}

extension TLSConnection {
    /// Whether the actor runs on its socket's loop; for tests.
    func isOnItsLoop() -> Bool { pollLoop.jobs.isRunnerThread }
}
