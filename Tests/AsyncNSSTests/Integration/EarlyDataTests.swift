import AsyncNSS
import Foundation
import Testing

extension Integration {
    @Suite("TLS 1.3 early data (0-RTT): our client and server, openssl and gnutls, and a replay")
    struct EarlyDataTests {
        /// What the server saw of one connection.
        struct Seen: Sendable {
            let request: String
            let earlyBytes: Int
            let accepted: Bool
        }

        /// A listener accepting early data, with a short anti-replay window
        /// that has passed once this returns, and a server that answers
        /// each line with `early=<bytes>` and records what it saw.
        static func server(window: Duration = .milliseconds(300), identity: TLSIdentity? = nil) async throws -> (TLSListener, Task<Void, Never>, Recorder) {
            let identity = if let identity { identity } else { try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"]) }
            var configuration = TLSConfiguration.makeServerConfiguration(identity: identity)
            configuration.earlyData = .accept(maximumSize: 4096, antiReplayWindow: window)
            let listener = try await TLSListener.bind(port: 0, configuration: configuration)
            let recorder = Recorder()
            let server = Task {
                await withDiscardingTaskGroup { group in
                    do {
                        for try await connection in listener {
                            group.addTask {
                                do {
                                    let request = try await TestServers.read(connection, through: "\n")
                                    let early = connection.earlyDataByteCount
                                    // Recorded before the reply, which waits for the
                                    // handshake: a replay would be seen here.
                                    recorder.add(Seen(request: request, earlyBytes: early, accepted: connection.info.earlyDataAccepted))
                                    do {
                                        try await connection.waitForHandshakeCompletion()
                                        recorder.finished(request, completed: true)
                                    } catch {
                                        recorder.finished(request, completed: false)
                                        throw error
                                    }
                                    try await connection.write(Array("early=\(connection.earlyDataByteCount)\n".utf8))
                                } catch {}
                                await connection.close()
                            }
                        }
                    } catch {}
                }
            }
            // NSS refuses all early data for one window after it made the
            // anti-replay context (replays across a restart).
            try await Task.sleep(for: window + .milliseconds(200))
            return (listener, server, recorder)
        }

        final class Recorder: @unchecked Sendable {
            // @unchecked Sendable: `seen` is only touched under `lock`.
            private let lock = NSLock()
            private var seen: [Seen] = []
            private var outcomes: [String: Bool] = [:]
            func add(_ entry: Seen) { lock.withLock { seen.append(entry) } }
            var all: [Seen] { lock.withLock { seen } }
            /// Whether the handshake of the connection that sent `request` completed.
            func finished(_ request: String, completed: Bool) { lock.withLock { outcomes[request] = completed } }
            func completed(_ request: String) -> Bool? { lock.withLock { outcomes[request] } }
        }

        /// A client that trusts the test identity, and has resumed nothing yet.
        static func client(for identity: TLSIdentity) -> TLSConfiguration {
            var configuration = TLSConfiguration.makeClientConfiguration(trust: .certificates(identity.certificateChain))
            configuration.serverName = "localhost"
            // A configuration of its own: its session cache key is new.
            configuration.minimumVersion = .tls13
            return configuration
        }

        /// One full handshake, so that the client holds a ticket.
        static func primeTicket(port: Int, configuration: TLSConfiguration) async throws {
            let first = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: configuration)
            try await first.write(Array("first\n".utf8))
            _ = try await TestServers.read(first, through: "\n")
            await first.close()
        }

        /// A client configuration that holds a ticket for a server accepting
        /// early data, and the port of the delaying proxy in front of it.
        struct PrimedClient {
            let configuration: TLSConfiguration
            let port: Int
            let recorder: Recorder
        }

        /// Runs `body` with a server accepting early data (``server(window:identity:)``)
        /// behind a ``delayingProxy(to:connections:)`` for two connections, the
        /// first of which has primed the client's ticket; closes them all after.
        static func withPrimedClient(_ body: (PrimedClient) async throws -> Void) async throws {
            let identity = try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])
            let (listener, server, recorder) = try await Self.server(identity: identity)
            let configuration = Self.client(for: identity)
            let proxy = try await Self.delayingProxy(to: listener.port, connections: 2)
            func closeAll() async {
                await proxy.listener.close()
                await listener.close()
                await server.value
            }
            do {
                try await Self.primeTicket(port: proxy.port, configuration: configuration)
                try await body(PrimedClient(configuration: configuration, port: proxy.port, recorder: recorder))
                _ = try await proxy.relay.value
            } catch {
                proxy.relay.cancel()
                await closeAll()
                throw error
            }
            await closeAll()
        }

        @Test("a resumed client sends its request as early data; the server reads it before the handshake completes, marked as early")
        func ourClientAndServer() async throws {
            try await withTimeout(seconds: 60) {
                try await Self.withPrimedClient { primed in
                    let request = Array("early hello\n".utf8)
                    let connection = try await TLSConnection.connect(host: "127.0.0.1", port: primed.port, configuration: primed.configuration, earlyData: request)
                    #expect(connection.info.resumed)
                    #expect(connection.info.earlyDataAccepted)
                    #expect(try await TestServers.read(connection, through: "\n") == "early=\(request.count)\n")
                    await connection.close()
                    let seen = primed.recorder.all
                    #expect(seen.count == 2)
                    #expect(seen.last?.request == "early hello\n")
                    #expect(seen.last?.earlyBytes == request.count)
                    #expect(seen.first?.earlyBytes == 0)
                }
            }
        }

        /// Relays one connection from `listener` to `port`, holding the
        /// server's first bytes back a moment, and returns what the client
        /// sent before it saw any: its ClientHello and early data.
        static func relayOnce(from listener: TCPListener, to port: Int) async throws -> [UInt8] {
            let client = try await listener.accept()
            let server = try await TCPConnection.connect(host: "127.0.0.1", port: port)
            let firstFlight = FirstFlight()
            // Either side may close or reset first; the relay just stops.
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    while let chunk = try? await client.receive() {
                        firstFlight.record(chunk)
                        guard (try? await server.write(chunk)) != nil else { return }
                    }
                }
                group.addTask {
                    var first = true
                    while let chunk = try? await server.receive() {
                        if first {
                            // The client sends nothing more until it has
                            // the server's answer: what came so far is all.
                            try? await Task.sleep(for: .milliseconds(100))
                            firstFlight.close()
                            first = false
                        }
                        guard (try? await client.write(chunk)) != nil else { return }
                    }
                }
                _ = await group.next()
                group.cancelAll()
            }
            await client.close()
            await server.close()
            return firstFlight.bytes
        }

        /// Relays the next `count` connections from a new proxy to `port`, each
        /// holding the server's first bytes back a moment. On loopback a
        /// client's first handshake step can otherwise meet the server's
        /// answer at once and finish the handshake before it sends early data.
        static func delayingProxy(to port: Int, connections count: Int) async throws -> (port: Int, relay: Task<[[UInt8]], any Error>, listener: TCPListener) {
            let proxy = try await TCPListener.bind(host: "127.0.0.1", port: 0)
            let relay = Task {
                var flights: [[UInt8]] = []
                for _ in 0..<count { flights.append(try await Self.relayOnce(from: proxy, to: port)) }
                return flights
            }
            return (proxy.port, relay, proxy)
        }

        final class FirstFlight: @unchecked Sendable {
            // @unchecked Sendable: the fields are only touched under `lock`.
            private let lock = NSLock()
            private var recorded: [UInt8] = []
            private var closed = false
            func record(_ chunk: [UInt8]) { lock.withLock { if !closed { recorded += chunk } } }
            func close() { lock.withLock { closed = true } }
            var bytes: [UInt8] { lock.withLock { recorded } }
        }

        @Test("a recorded ClientHello with early data, replayed within the window, gets nothing to the application")
        func replayRefused() async throws {
            try await withTimeout(seconds: 60) {
                let identity = try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])
                let (listener, server, recorder) = try await Self.server(window: .seconds(1), identity: identity)
                let configuration = Self.client(for: identity)
                // Both connections through the proxy: the client keys its
                // tickets by the address it connects to.
                let proxy = try await TCPListener.bind(host: "127.0.0.1", port: 0)
                let relay = Task {
                    _ = try await Self.relayOnce(from: proxy, to: listener.port)
                    return try await Self.relayOnce(from: proxy, to: listener.port)
                }
                try await Self.primeTicket(port: proxy.port, configuration: configuration)
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: proxy.port, configuration: configuration, earlyData: Array("transfer 100\n".utf8))
                #expect(connection.info.earlyDataAccepted)
                #expect(try await TestServers.read(connection, through: "\n") == "early=13\n")
                await connection.close()
                let flight = try await relay.value
                #expect(flight.count > 13)

                // The same bytes again, on a new connection, within the window.
                let replay = try RawTCP(port: listener.port, timeout: 0.5)
                replay.send(flight)
                let answer = replay.readAll()
                replay.close()
                #expect(!answer.isEmpty, "the server answers the ClientHello, and waits for a Finished that never comes")
                try await Task.sleep(for: .milliseconds(200))
                #expect(recorder.all.map(\.request) == ["first\n", "transfer 100\n"], "\(recorder.all.map(\.request))")
                await proxy.close()
                await listener.close()
                await server.value
            }
        }

        @Test("our client's early data reaches openssl s_server -early_data, which prints it as early data",
              .enabled(if: ExternalTool.isInstalled("openssl", "bash"), "needs openssl: apt-get install openssl"))
        func opensslServer() async throws {
            try await withTimeout(seconds: 90) {
                let directory = try TemporaryDirectory()
                let certificate = directory.file("server.pem"), key = directory.file("server.key")
                try await SelfSignedFiles.make(certificate: certificate, key: key, subject: "/CN=localhost", altName: "DNS:localhost")
                let port = try RawTCP.freePort()
                // Interactive: it prints what it receives (it takes early
                // data in no other mode). It stops once its standard input
                // ends, so that is a pipe that stays open for a minute; exec
                // keeps the process the one that stop() signals.
                let command = "exec openssl s_server -accept 127.0.0.1:\(port) -cert '\(certificate)' -key '\(key)' -tls1_3 -early_data < <(exec sleep 60 2>/dev/null)"
                let server = try ChildProcess("bash", ["-c", command])
                defer { server.stop() }
                try await RawTCP.waitUntilListeningWithoutConnecting(port: port)
                var configuration = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: certificate))
                configuration.serverName = "localhost"
                let proxy = try await Self.delayingProxy(to: port, connections: 2)
                let first = try await TLSConnection.connect(host: "127.0.0.1", port: proxy.port, configuration: configuration)
                // A read takes in the ticket that the server sends after the
                // handshake; nothing else comes.
                let reading = Task { try await first.receive() }
                try await Task.sleep(for: .milliseconds(300))
                reading.cancel()
                _ = await reading.result
                await first.close()
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: proxy.port, configuration: configuration, earlyData: Array("early ping\n".utf8))
                #expect(connection.info.resumed)
                #expect(connection.info.earlyDataAccepted)
                try await Task.sleep(for: .milliseconds(300))
                await connection.close()
                // The interactive server stops at the end of its input: stop it now.
                _ = try await proxy.relay.value
                await proxy.listener.close()
                let transcript = server.stop()
                // It writes the data itself unbuffered, ahead of its buffered
                // "Early data received:" line; the prime connection had none.
                #expect(transcript.contains("early ping"), "\(transcript)")
                #expect(transcript.contains("Early data received:"), "\(transcript)")
                #expect(transcript.components(separatedBy: "No early data received").count == 2, "\(transcript)")
            }
        }

        @Test("openssl s_client -early_data and gnutls-cli --earlydata get their request to our server early",
              .enabled(if: ExternalTool.isInstalled("openssl", "gnutls-cli"), "needs openssl and gnutls-bin"))
        func realClients() async throws {
            try await withTimeout(seconds: 90) {
                let identity = try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])
                let directory = try TemporaryDirectory()
                let ca = try directory.write("ca.pem", identity.certificateChain.map(\.pemRepresentation).joined())
                let (listener, server, recorder) = try await Self.server(identity: identity)
                let request = try directory.write("request", "openssl early\n")
                let session = directory.file("session.pem")
                let first = try await ExternalTool.run("openssl", ["s_client", "-connect", "127.0.0.1:\(listener.port)", "-tls1_3", "-CAfile", ca, "-sess_out", session, "-ign_eof"], input: "first\n")
                #expect(first.status == 0, "\(first)")
                let second = try await ExternalTool.run("openssl", ["s_client", "-connect", "127.0.0.1:\(listener.port)", "-tls1_3", "-CAfile", ca, "-sess_in", session, "-early_data", request, "-ign_eof"])
                #expect(second.stdout.contains("Early data was accepted"), "\(second)")
                #expect(second.stdout.contains("early=14"), "\(second)")

                let gnutlsRequest = try directory.write("gnutls-request", "gnutls early\n")
                let gnutls = try await ExternalTool.run("gnutls-cli", ["--x509cafile=\(ca)", "--verify-hostname=localhost", "-p", "\(listener.port)", "127.0.0.1", "-r",
                                                                       "--earlydata=\(gnutlsRequest)", "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3"])
                #expect(gnutls.stdout.contains("early=13"), "\(gnutls)")
                let early = recorder.all.filter { $0.earlyBytes > 0 }.map(\.request)
                #expect(early.contains("openssl early\n") && early.contains("gnutls early\n"), "\(recorder.all.map(\.request))")
                await listener.close()
                await server.value
            }
        }

        @Test("more early data than the server takes: the rest follows the handshake, all of it in order")
        func overTheLimit() async throws {
            try await withTimeout(seconds: 60) {
                try await Self.withPrimedClient { primed in
                    let request = String(repeating: "abcdefgh", count: 1250) + "\n"
                    let connection = try await TLSConnection.connect(host: "127.0.0.1", port: primed.port, configuration: primed.configuration, earlyData: Array(request.utf8))
                    #expect(connection.info.earlyDataAccepted)
                    let reply = try await TestServers.read(connection, through: "\n")
                    await connection.close()
                    let seen = primed.recorder.all.last
                    #expect(seen?.request == request)
                    #expect((1...4096).contains(seen?.earlyBytes ?? 0), "\(String(describing: seen?.earlyBytes))")
                    #expect(reply == "early=\(seen?.earlyBytes ?? -1)\n")
                }
            }
        }

        @Test("a client that vanishes after its early data: the application reads it, then waitForHandshakeCompletion throws")
        func clientVanishes() async throws {
            try await withTimeout(seconds: 60) {
                let identity = try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])
                // A window wide enough for the ticket age the late flight claims.
                let (listener, server, recorder) = try await Self.server(window: .seconds(1), identity: identity)
                var configuration = Self.client(for: identity)
                let proxy = try await TCPListener.bind(host: "127.0.0.1", port: 0)
                let prime = Task { try await Self.relayOnce(from: proxy, to: listener.port) }
                try await Self.primeTicket(port: proxy.port, configuration: configuration)
                _ = try await prime.value
                // The proxy keeps the next first flight from the server.
                let captured = Task { () -> [UInt8] in
                    let client = try await proxy.accept()
                    let flight = FirstFlight()
                    let reader = Task { while let chunk = try await client.receive() { flight.record(chunk) } }
                    // The ClientHello, then the early data once the client's
                    // first handshake step would block.
                    try await Task.sleep(for: .milliseconds(200))
                    reader.cancel()
                    _ = await reader.result
                    await client.close()
                    return flight.bytes
                }
                configuration.handshakeTimeout = .seconds(1)
                _ = try? await TLSConnection.connect(host: "127.0.0.1", port: proxy.port, configuration: configuration, earlyData: Array("lost request\n".utf8))
                let flight = try await captured.value
                // The server sees the flight first here, so it accepts the early data.
                let tcp = try RawTCP(port: listener.port, timeout: 0.3)
                tcp.send(flight)
                _ = tcp.readAll()
                tcp.close()
                try await Task.sleep(for: .milliseconds(300))
                #expect(recorder.all.last?.request == "lost request\n")
                #expect(recorder.all.last?.earlyBytes == 13)
                #expect(recorder.completed("lost request\n") == false)
                await proxy.close()
                await listener.close()
                await server.value
            }
        }

        @Test("without a ticket, the same call sends the bytes right after the handshake, once")
        func withoutTicket() async throws {
            try await withTimeout(seconds: 60) {
                let identity = try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])
                let (listener, server, recorder) = try await Self.server(identity: identity)
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: Self.client(for: identity), earlyData: Array("late hello\n".utf8))
                #expect(!connection.info.earlyDataAccepted)
                #expect(try await TestServers.read(connection, through: "\n") == "early=0\n")
                await connection.close()
                #expect(recorder.all.map(\.request) == ["late hello\n"])
                await listener.close()
                await server.value
            }
        }
    }
}
