import AsyncNSS
import Testing

extension Integration {
    @Suite("Echo between our listener and our client")
    struct EchoTests {
        @Test("echo over IPv4 loopback", arguments: [TLSVersion.tls12, .tls13])
        func echo(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(min: version, max: version))
                let server = Task { try await EchoServer.serveOne(listener) }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                #expect(client.info.protocolVersion == version)
                #expect(client.info.peerSubject == "CN=localhost")
                #expect(client.info.resumed == false)
                try await client.write(Array("hello".utf8))
                var iterator = client.inbound.makeAsyncIterator()
                #expect(try await iterator.next() == Array("hello".utf8))
                await client.close()
                try await server.value
                await listener.close()
            }
        }

        @Test("IPv6 loopback, port 0, SNI and ALPN")
        func ipv6WithALPN() async throws {
            try await withTimeout(seconds: 30) {
                var serverConfiguration = try await TestIdentities.serverConfiguration()
                serverConfiguration.applicationProtocols = ["h2", "http/1.1"]
                let listener = try await TLSListener.bind(host: "::1", port: 0, configuration: serverConfiguration)
                #expect(listener.port > 0)
                #expect(listener.localAddress == "[::1]:\(listener.port)")
                let accepted = Task { () -> TLSConnectionInfo? in
                    for try await connection in listener {
                        let info = connection.info
                        await connection.close()
                        return info
                    }
                    return nil
                }
                var clientConfiguration = try await TestIdentities.clientConfiguration()
                clientConfiguration.applicationProtocols = ["h2", "http/1.1"]
                clientConfiguration.serverName = "localhost"
                let client = try await TLSConnection.connect(host: "::1", port: listener.port, configuration: clientConfiguration)
                #expect(client.info.applicationProtocol == "h2")
                #expect(client.remoteAddress == "[::1]:\(listener.port)")
                let serverInfo = try await accepted.value
                #expect(serverInfo?.serverName == "localhost")
                #expect(serverInfo?.applicationProtocol == "h2")
                #expect(serverInfo?.peerCertificates.isEmpty == true)
                await client.close()
                await listener.close()
            }
        }

        @Test("concurrent writes from several tasks are never interleaved")
        func concurrentWrites() async throws {
            try await withTimeout(seconds: 60) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let server = Task { try await EchoServer.serveOne(listener) }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                let blockSize = 256 * 1024, blocksPerWriter = 16, writers: [UInt8] = [0x41, 0x42, 0x43, 0x44]
                let reader = Task { () -> [UInt8] in
                    var received: [UInt8] = []
                    for try await chunk in client.inbound {
                        received += chunk
                        if received.count == blockSize * blocksPerWriter * writers.count { break }
                    }
                    return received
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for letter in writers {
                        group.addTask {
                            for _ in 0..<blocksPerWriter { try await client.write([UInt8](repeating: letter, count: blockSize)) }
                        }
                    }
                    try await group.waitForAll()
                }
                let received = try await reader.value
                #expect(received.count == blockSize * blocksPerWriter * writers.count)
                var counts: [UInt8: Int] = [:]
                for start in stride(from: 0, to: received.count, by: blockSize) {
                    let block = received[start..<min(start + blockSize, received.count)]
                    let first = block.first ?? 0
                    #expect(block.allSatisfy { $0 == first }, "block at \(start) mixes writers")
                    counts[first, default: 0] += 1
                }
                #expect(counts == Dictionary(uniqueKeysWithValues: writers.map { ($0, blocksPerWriter) }))
                await client.close()
                try await server.value
                await listener.close()
            }
        }

        @Test("handshake events: the initial handshake is published")
        func handshakeEvents() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let server = Task { try await EchoServer.serveOne(listener) }
                let client = try await TLSConnection.connect(host: "localhost", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                var events = client.handshakeEvents.makeAsyncIterator()
                let first = await events.next()
                #expect(first?.kind == .initial)
                #expect(first?.sequenceNumber == 1)
                #expect(first?.info.protocolVersion == .tls13)
                #expect(first?.info.cipherSuite.hasPrefix("TLS_") == true)
                await client.close()
                #expect(await events.next() == nil)
                try await server.value
                await listener.close()
            }
        }
    }
}

/// Small servers the tests run inside the test process.
enum EchoServer {
    /// Echoes the first connection of `listener` until its peer closes.
    static func serveOne(_ listener: TLSListener) async throws {
        for try await connection in listener {
            try await echo(connection)
            return
        }
    }

    /// Echoes every connection, each in its own task, until the listener
    /// closes. An error of a connection or of the listener's sequence is
    /// recorded as an issue of the running test unless `expected` accepts it:
    /// a test server that fails must fail its test.
    static func serveAll(_ listener: TLSListener, expected: @escaping @Sendable (any Error) -> Bool = { _ in false }, sourceLocation: SourceLocation = #_sourceLocation) async {
        await withDiscardingTaskGroup { group in
            do {
                for try await connection in listener {
                    group.addTask {
                        do {
                            try await echo(connection)
                        } catch where !(error is CancellationError) && !expected(error) {
                            Issue.record(error, "the echo server's connection with \(connection.remoteAddress) failed", sourceLocation: sourceLocation)
                        } catch {}
                    }
                }
            } catch where !(error is CancellationError) {
                Issue.record(error, "the echo server's listener failed", sourceLocation: sourceLocation)
            } catch {}
        }
    }

    static func echo(_ connection: TLSConnection) async throws {
        do {
            for try await chunk in connection.inbound {
                try await connection.write(chunk)
            }
            await connection.close()
        } catch {
            await connection.close()
            throw error
        }
    }
}
