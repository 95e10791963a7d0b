@testable import AsyncNSS
import Testing

extension Integration {
    /// Schedules that provoke races: many handshakes while the listener
    /// reloads, cancellations at random moments of every kind of wait. Each
    /// ends with the leak baseline: descriptors, registered resources,
    /// callback contexts and poll state back where they were.
    @Suite("Concurrency: reloads under load, cancellations at random moments")
    struct ConcurrencyTests {
        @Test("200 concurrent connects while reload() loops: every client is served by one of the identities, all sessions end")
        func connectsDuringReloads() async throws {
            try await withTimeout(seconds: 120) {
                let first = try await TLSIdentity.selfSigned(names: ["localhost"])
                let second = try await TLSIdentity.selfSigned(names: ["localhost"])
                let listener = try await TLSListener.bind(port: 0, configuration: .makeServerConfiguration(identity: first))
                let server = Task { await EchoServer.serveAll(listener) }
                // A client that trusts both identities, whichever it is shown.
                var trusting = TLSConfiguration.makeClientConfiguration(trust: .certificates(first.certificateChain + second.certificateChain))
                trusting.serverName = "localhost"
                let client = trusting
                try await Self.echo(port: listener.port, client, byte: 0)
                let baseline = await LeakBaseline.take()

                let reloads = Task {
                    var count = 0
                    while !Task.isCancelled {
                        try await listener.reload(.makeServerConfiguration(identity: count.isMultiple(of: 2) ? second : first))
                        count += 1
                        await Task.yield()
                    }
                    return count
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 0..<200 {
                        group.addTask { try await Self.echo(port: listener.port, client, byte: UInt8(index % 256)) }
                    }
                    try await group.waitForAll()
                }
                reloads.cancel()
                let reloadCount = try await reloads.value
                #expect(reloadCount > 0, "the listener reloaded during the connects")
                try await baseline.expectReached(within: .seconds(5))
                await listener.close()
                await server.value
            }
        }

        @Test("cancellation at random moments ends each wait promptly and leaves nothing behind", arguments: CancellationMoment.allCases)
        func randomCancellation(moment: CancellationMoment) async throws {
            try await withTimeout(seconds: 120) {
                var serverConfiguration = try await TestIdentities.serverConfiguration(max: moment == .rehandshake ? .tls12 : .tls13)
                serverConfiguration.renegotiation = .localAndPeer
                let listener = try await TLSListener.bind(port: 0, configuration: serverConfiguration)
                // The server neither reads nor answers: reads and
                // rehandshakes wait, writes fill the buffers and wait.
                let server = Task { await Self.holdOpen(listener) }
                let clientConfiguration = try await TestIdentities.clientConfiguration(max: moment == .rehandshake ? .tls12 : .tls13)
                var random = UnitSeededGenerator(seed: UInt64(moment.rawValue.utf8.count))
                let warmUp = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: clientConfiguration)
                await warmUp.close()
                let baseline = await LeakBaseline.take()
                for _ in 0..<20 {
                    let delay = Duration.milliseconds(Int.random(in: 0...50, using: &random))
                    let operation = Task {
                        switch moment {
                        case .handshake:
                            let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: clientConfiguration)
                            await connection.close()
                        case .read, .write, .rehandshake:
                            let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: clientConfiguration)
                            defer { Task { await connection.close() } }
                            switch moment {
                            case .read: _ = try await connection.receive()
                            case .write: for _ in 0..<64 { try await connection.write([UInt8](repeating: 7, count: 1 << 20)) }
                            default: _ = try await connection.rehandshake()
                            }
                        }
                    }
                    try await Task.sleep(for: delay)
                    let cancelledAt = ContinuousClock.now
                    operation.cancel()
                    let result = await operation.result
                    #expect(ContinuousClock.now - cancelledAt < .seconds(5), "cancelling \(moment) after \(delay)")
                    switch result {
                    case .success:
                        // The handshake may finish before the cancellation.
                        #expect(moment == .handshake, "\(moment) after \(delay) returned")
                    case .failure(let error):
                        // Cancelled, or, for a rehandshake, refused by the
                        // server's reader-less state after the close.
                        #expect(error is CancellationError || (error as? TLSError)?.kind == .closed, "\(moment) after \(delay): \(error)")
                    }
                }
                // The server held the connections: close it, then count.
                await listener.close()
                await server.value
                try await baseline.expectReached(within: .seconds(5))
            }
        }

        @Test("a second reader while one waits gets concurrentOperation; the first reader gets every byte, in order")
        func twoReaders() async throws {
            try await withTimeout(seconds: 60) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let server = Task { await EchoServer.serveAll(listener) }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                let total = 1 << 20
                let first = Task { () -> [UInt8] in
                    var received: [UInt8] = []
                    while let chunk = try await client.receive() { received += chunk }
                    return received
                }
                try await Task.sleep(for: .milliseconds(100))
                // The inbound stream has a single consumer: the second reader
                // is refused at once, and the first one is not disturbed.
                for _ in 0..<10 {
                    await #expect {
                        _ = try await client.receive()
                    } throws: { error in
                        (error as? TLSError)?.kind == .concurrentOperation
                    }
                }
                let pattern = (0..<total).map { UInt8(truncatingIfNeeded: $0 / 1024) }
                for start in stride(from: 0, to: total, by: 64 * 1024) {
                    try await client.write(Array(pattern[start..<(start + 64 * 1024)]))
                }
                try await client.shutdownOutput()
                #expect(try await first.value == pattern)
                await client.close()
                await listener.close()
                await server.value
            }
        }

        private static func echo(port: Int, _ configuration: TLSConfiguration, byte: UInt8) async throws {
            let connection = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: configuration)
            try await connection.write([byte])
            #expect(try await connection.receive() == [byte])
            await connection.close()
        }

        /// Accepts connections and neither reads nor writes until the
        /// listener closes; then closes them.
        private static func holdOpen(_ listener: TLSListener) async {
            var held: [TLSConnection] = []
            do {
                for try await connection in listener { held.append(connection) }
            } catch {
                Issue.record(error, "the holding server's listener failed")
            }
            for connection in held { await connection.close() }
        }
    }
}

/// Where a task of ``Integration/ConcurrencyTests`` can be waiting when it is cancelled.
enum CancellationMoment: String, CaseIterable, Sendable {
    case handshake, read, write, rehandshake
}
