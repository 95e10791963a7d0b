import AsyncNSS
import Testing

extension Integration {
    @Suite("Rehandshakes: TLS 1.2 renegotiation and TLS 1.3 post-handshake authentication")
    struct RehandshakeTests {
        typealias Pair = ConnectedPair

        static func tls12Pair(server: (inout TLSConfiguration) -> Void = { _ in }, client: (inout TLSConfiguration) -> Void = { _ in }) async throws -> Pair {
            var serverConfiguration = try await TestIdentities.serverConfiguration(min: .tls12, max: .tls12)
            server(&serverConfiguration)
            var clientConfiguration = try await TestIdentities.clientConfiguration(min: .tls12, max: .tls12)
            client(&clientConfiguration)
            return try await Pair.make(server: serverConfiguration, client: clientConfiguration)
        }

        /// Reads exactly `count` bytes.
        static func read(_ connection: TLSConnection, count: Int) async throws -> [UInt8] {
            var received: [UInt8] = []
            while received.count < count, let chunk = try await connection.receive(maxBytes: count - received.count) {
                received += chunk
            }
            return received
        }

        @Test("a server renegotiates while the client reads; both sides see the event")
        func serverInitiated() async throws {
            try await withTimeout(seconds: 30) {
                let pair = try await Self.tls12Pair()
                let echo = Task { try await EchoServer.echo(pair.client) }
                var clientEvents = pair.client.handshakeEvents.makeAsyncIterator()
                #expect(await clientEvents.next()?.kind == .initial)

                let event = try await pair.server.rehandshake(flushSession: true)
                #expect(event.kind == .renegotiation)
                #expect(event.sequenceNumber == 2)
                #expect(event.info.protocolVersion == .tls12)
                #expect(!event.info.resumed)
                let clientEvent = await clientEvents.next()
                #expect(clientEvent?.kind == .renegotiation)

                // An NSS client drops its session when asked to renegotiate,
                // so even flushSession: false gives a full handshake.
                let again = try await pair.server.rehandshake(flushSession: false)
                #expect(again.sequenceNumber == 3)
                #expect(await clientEvents.next()?.sequenceNumber == 3)

                try await pair.server.write(Array("after\n".utf8))
                #expect(try await Self.read(pair.server, count: 6) == Array("after\n".utf8))
                await pair.finish(echo: echo, echoing: pair.client)
            }
        }

        @Test("a client renegotiates while nobody reads on its side; the server's reader drives its end")
        func clientInitiatedAccepted() async throws {
            try await withTimeout(seconds: 30) {
                let pair = try await Self.tls12Pair(server: { $0.renegotiation = .localAndPeer })
                let echo = Task { try await EchoServer.echo(pair.server) }
                let event = try await pair.client.rehandshake()
                #expect(event.kind == .renegotiation)
                #expect(!event.info.resumed)
                // A client never resumes: its peer presented a certificate,
                // and NSS would leak it (see rehandshake(flushSession:)).
                let full = try await pair.client.rehandshake(flushSession: false)
                #expect(!full.info.resumed)
                try await pair.client.write(Array("ping".utf8))
                #expect(try await Self.read(pair.client, count: 4) == Array("ping".utf8))
                #expect(pair.server.info.protocolVersion == .tls12)
                await pair.finish(echo: echo, echoing: pair.server)
            }
        }

        @Test("by default a server refuses the client's renegotiation, and the connection goes on")
        func clientInitiatedRefusedByDefault() async throws {
            try await withTimeout(seconds: 30) {
                let pair = try await Self.tls12Pair()
                let echo = Task { try await EchoServer.echo(pair.server) }
                let error = await #expect(throws: TLSError.self) { try await pair.client.rehandshake() }
                #expect(error?.kind == .renegotiationRefused, "\(String(describing: error))")
                try await pair.client.write(Array("still here".utf8))
                #expect(try await Self.read(pair.client, count: 10) == Array("still here".utf8))
                await pair.finish(echo: echo, echoing: pair.server)
            }
        }

        @Test("a client with the policy never refuses the server's renegotiation")
        func clientPolicyNever() async throws {
            try await withTimeout(seconds: 30) {
                let pair = try await Self.tls12Pair(client: { $0.renegotiation = .never })
                let echo = Task { try await EchoServer.echo(pair.client) }
                let error = await #expect(throws: TLSError.self) { try await pair.server.rehandshake() }
                #expect(error?.kind == .renegotiationRefused, "\(String(describing: error))")
                let local = await #expect(throws: TLSError.self) { try await pair.client.rehandshake() }
                #expect(local?.kind == .invalidConfiguration)
                await pair.finish(echo: echo, echoing: pair.client)
            }
        }

        @Test("TLS 1.3 has no renegotiation")
        func tls13Refuses() async throws {
            try await withTimeout(seconds: 30) {
                let pair = try await Pair.make(server: try await TestIdentities.serverConfiguration(), client: try await TestIdentities.clientConfiguration())
                let error = await #expect(throws: TLSError.self) { try await pair.server.rehandshake() }
                #expect(error?.kind == .invalidConfiguration)
                await pair.close()
            }
        }

        @Test("data flows both ways, byte for byte, during 100 back-to-back renegotiations", arguments: [true, false])
        func dataDuringRenegotiations(serverInitiates: Bool) async throws {
            try await withTimeout(seconds: 120) {
                let pair = try await Self.tls12Pair(server: { $0.renegotiation = .localAndPeer })
                let initiator = serverInitiates ? pair.server : pair.client
                let total = 2_000_000
                func pattern(_ seed: Int) -> [UInt8] { (0..<total).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) } }
                let fromClient = pattern(7)
                let fromServer = pattern(11)

                // Each side writes its stream in small pieces and reads the other's.
                func send(_ connection: TLSConnection, _ bytes: [UInt8]) async throws {
                    var offset = 0
                    while offset < bytes.count {
                        let end = min(bytes.count, offset + 7_919)
                        try await connection.write(Array(bytes[offset..<end]))
                        offset = end
                    }
                }
                let other = serverInitiates ? pair.client : pair.server
                let clientSends = Task { try await send(pair.client, fromClient) }
                let serverSends = Task { try await send(pair.server, fromServer) }
                // Both sides read until the other shuts its output down: a
                // rehandshake needs its peer to read. The initiator's reader
                // pauses now and then, so that the rehandshake also has to
                // read (and keep) data itself.
                let initiatorReads = Task { () -> [UInt8] in
                    var received: [UInt8] = []
                    while let chunk = try await initiator.receive(maxBytes: 3_001) {
                        received += chunk
                        if chunk.count % 3 == 0 { try await Task.sleep(for: .milliseconds(1)) }
                    }
                    return received
                }
                let otherReads = Task { () -> [UInt8] in
                    var received: [UInt8] = []
                    while let chunk = try await other.receive() { received += chunk }
                    return received
                }

                var events: [HandshakeEvent] = []
                for _ in 0..<100 {
                    events.append(try await initiator.rehandshake(flushSession: false))
                }
                try await clientSends.value
                try await serverSends.value
                try await pair.client.shutdownOutput()
                try await pair.server.shutdownOutput()
                let atInitiator = try await initiatorReads.value
                let atOther = try await otherReads.value
                // One event per rehandshake, numbered after the initial handshake's 1.
                #expect(events.map(\.sequenceNumber) == Array(2...101))
                #expect(events.allSatisfy { $0.kind == .renegotiation })
                #expect(atInitiator == (serverInitiates ? fromClient : fromServer))
                #expect(atOther == (serverInitiates ? fromServer : fromClient))
                await pair.close()
            }
        }

        @Test("two rehandshakes at once run one after the other")
        func concurrentRehandshakes() async throws {
            try await withTimeout(seconds: 30) {
                let pair = try await Self.tls12Pair()
                let echo = Task { try await EchoServer.echo(pair.client) }
                async let first = pair.server.rehandshake()
                async let second = pair.server.rehandshake()
                let numbers = try await [first.sequenceNumber, second.sequenceNumber].sorted()
                #expect(numbers == [2, 3])
                await pair.finish(echo: echo, echoing: pair.client)
            }
        }
    }
}
