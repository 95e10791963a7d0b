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
                                    try await connection.write(Array("early=\(early)\n".utf8))
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
            func add(_ entry: Seen) { lock.withLock { seen.append(entry) } }
            var all: [Seen] { lock.withLock { seen } }
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

        @Test("a resumed client sends its request as early data; the server reads it before the handshake completes, marked as early")
        func ourClientAndServer() async throws {
            try await withTimeout(seconds: 60) {
                let identity = try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])
                let (listener, server, recorder) = try await Self.server(identity: identity)
                let configuration = Self.client(for: identity)
                try await Self.primeTicket(port: listener.port, configuration: configuration)
                let request = Array("early hello\n".utf8)
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: configuration, earlyData: request)
                #expect(connection.info.resumed)
                #expect(connection.info.earlyDataAccepted)
                #expect(try await TestServers.read(connection, through: "\n") == "early=\(request.count)\n")
                await connection.close()
                let seen = recorder.all
                #expect(seen.count == 2)
                #expect(seen.last?.request == "early hello\n")
                #expect(seen.last?.earlyBytes == request.count)
                #expect(seen.first?.earlyBytes == 0)
                await listener.close()
                await server.value
            }
        }

        /// Relays one connection from `listener` to `port`, holding the
        /// server's first bytes back a moment, and returns what the client
        /// sent before it saw any: its ClientHello and early data.
        static func relayOnce(from listener: TCPListener, to port: Int) async throws -> [UInt8] {
            let client = try await listener.accept()
            let server = try await TCPConnection.connect(host: "127.0.0.1", port: port)
            let firstFlight = FirstFlight()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while let chunk = try await client.receive() {
                        firstFlight.record(chunk)
                        try await server.write(chunk)
                    }
                }
                group.addTask {
                    var first = true
                    while let chunk = try await server.receive() {
                        if first {
                            // The client sends nothing more until it has
                            // the server's answer: what came so far is all.
                            try await Task.sleep(for: .milliseconds(100))
                            firstFlight.close()
                            first = false
                        }
                        try await client.write(chunk)
                    }
                }
                _ = try await group.next()
                group.cancelAll()
            }
            await client.close()
            await server.close()
            return firstFlight.bytes
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
                let (listener, server, recorder) = try await Self.server(window: .seconds(2), identity: identity)
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
                let replay = try RawTCP(port: listener.port, timeout: 2)
                replay.send(flight)
                let answer = replay.readAll()
                replay.close()
                #expect(!answer.isEmpty, "the server answers the ClientHello, and waits for a Finished that never comes")
                try await Task.sleep(for: .milliseconds(300))
                #expect(recorder.all.map(\.request) == ["first\n", "transfer 100\n"], "\(recorder.all.map(\.request))")
                await proxy.close()
                await listener.close()
                await server.value
            }
        }

        @Test("our client's early data reaches gnutls-serv --earlydata, which echoes it",
              .enabled(if: ExternalTool.isInstalled("gnutls-serv", "openssl"), "needs gnutls-bin and openssl"))
        func gnutlsServer() async throws {
            try await withTimeout(seconds: 90) {
                let directory = try TemporaryDirectory()
                let certificate = directory.file("server.pem"), key = directory.file("server.key")
                try await SelfSignedFiles.make(certificate: certificate, key: key, subject: "/CN=localhost", altName: "DNS:localhost")
                let port = try RawTCP.freePort()
                let server = try ChildProcess("gnutls-serv", ["--port", "\(port)", "--x509certfile", certificate, "--x509keyfile", key, "--earlydata", "--echo",
                                                              "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3"])
                defer { server.stop() }
                try await RawTCP.waitUntilListening(port: port)
                var configuration = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: certificate))
                configuration.serverName = "localhost"
                configuration.minimumVersion = .tls13
                var accepted = false
                // GnuTLS refuses early data for a while after it starts (its
                // anti-replay window); a fresh ticket each round.
                for _ in 0..<15 where !accepted {
                    let first = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: configuration)
                    try await first.write(Array("first\n".utf8))
                    _ = try await TestServers.read(first, through: "\n")
                    await first.close()
                    let connection = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: configuration, earlyData: Array("early ping\n".utf8))
                    #expect(connection.info.resumed)
                    #expect(try await TestServers.read(connection, through: "\n") == "early ping\n")
                    accepted = connection.info.earlyDataAccepted
                    await connection.close()
                    if !accepted { try await Task.sleep(for: .seconds(1)) }
                }
                #expect(accepted, "gnutls-serv never accepted early data: \(server.stop())")
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
