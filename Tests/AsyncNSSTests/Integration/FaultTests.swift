import AsyncNSS
import Foundation
import Testing

extension Integration {
    /// Faults from issue 4: each ends the affected connection with a clear
    /// error, and the listener and other connections keep working.
    @Suite("Faults: bad records, resets, half-closes")
    struct FaultTests {
        /// A raw peer's bytes, the NSS error the server must report, and what
        /// the peer does afterwards.
        struct RecordFault: Sendable, CustomTestStringConvertible {
            let name: String
            let bytes: [UInt8]
            let expectedError: String
            var testDescription: String { name }
        }

        static let recordFaults: [RecordFault] = [
            // A content type that does not exist.
            RecordFault(name: "invalid content type", bytes: [0x63, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00], expectedError: "SSL_ERROR_RX_UNKNOWN_RECORD_TYPE"),
            // A handshake record longer than TLS allows (2^14 + 2048).
            RecordFault(name: "oversized record", bytes: [0x16, 0x03, 0x03, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 64), expectedError: "SSL_ERROR_RX_RECORD_TOO_LONG"),
            // Application data before any handshake.
            RecordFault(name: "application data first", bytes: [0x17, 0x03, 0x03, 0x00, 0x05, 0x68, 0x65, 0x6C, 0x6C, 0x6F], expectedError: "SSL_ERROR_RX_UNEXPECTED_APPLICATION_DATA"),
            // A record announcing 300 bytes, 20 of them, then a FIN.
            RecordFault(name: "truncated record", bytes: [0x16, 0x03, 0x01, 0x01, 0x2C] + [UInt8](repeating: 0x01, count: 20), expectedError: "PR_END_OF_FILE_ERROR"),
        ]

        private static func listener() async throws -> (TLSListener, CapturingLogHandler.Store, Task<Void, Never>) {
            let (logger, store) = CapturingLogHandler.logger()
            let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(), logger: logger)
            return (listener, store, Task { await EchoServer.serveAll(listener) })
        }

        private static func goodEcho(port: Int, _ message: String) async throws {
            let client = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: try await TestIdentities.clientConfiguration())
            try await client.write(Array(message.utf8))
            var received: [UInt8] = []
            while received.count < message.utf8.count, let chunk = try await client.receive() { received += chunk }
            #expect(String(decoding: received, as: UTF8.self) == message)
            await client.close()
        }

        @Test("a bad record ends that connection with its NSS error; others are served", arguments: recordFaults)
        func badRecord(fault: RecordFault) async throws {
            try await withTimeout(seconds: 30) {
                let (listener, log, server) = try await Self.listener()
                let port = listener.port
                // A connection that is in the middle of an exchange meanwhile.
                let bystander = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: try await TestIdentities.clientConfiguration())
                try await bystander.write([1])
                #expect(try await bystander.receive() == [1])
                try await onOwnThread {
                    let peer = try RawTCP(port: port)
                    peer.send(fault.bytes)
                    peer.shutdownOutput()
                    _ = peer.readAll()
                    peer.close()
                }
                let line = await log.waitForLine(containing: ["handshake failed", fault.expectedError])
                #expect(line != nil, "\(log.all)")
                try await bystander.write([2])
                #expect(try await bystander.receive() == [2])
                try await Self.goodEcho(port: port, "after \(fault.name)")
                await bystander.close()
                await listener.close()
                await server.value
            }
        }

        @Test("a reset before any byte of the handshake is logged and harms nobody")
        func resetBeforeHandshake() async throws {
            try await withTimeout(seconds: 30) {
                let (listener, log, server) = try await Self.listener()
                let port = listener.port
                try await onOwnThread { try RawTCP(port: port).reset() }
                let line = await log.waitForLine(containing: ["handshake failed", "127.0.0.1"])
                #expect(line != nil, "\(log.all)")
                try await Self.goodEcho(port: port, "after the reset")
                await listener.close()
                await server.value
            }
        }

        @Test("a reset in the middle of a transfer ends that connection with PR_CONNECT_RESET_ERROR; others are served",
              .enabled(if: ExternalTool.isInstalled("python3"), "needs python3"))
        func resetMidTransfer() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let port = listener.port
                // The server reads and echoes until the connection ends, and reports how.
                let served = Task { () -> (bytes: Int, error: (any Error)?) in
                    var bytes = 0
                    for try await connection in listener {
                        do {
                            for try await chunk in connection.inbound {
                                bytes += chunk.count
                                try await connection.write(chunk)
                            }
                            return (bytes, nil)
                        } catch {
                            await connection.close()
                            return (bytes, error)
                        }
                    }
                    return (bytes, nil)
                }
                // Python's ssl module: a TLS client that sends 64 KiB, reads
                // some of the echo, and closes with SO_LINGER 0 (a reset)
                // while the rest of the echo is still unread.
                let script = """
                    import socket, ssl, struct, sys
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                    tls = context.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
                    tls.sendall(b"x" * 65536)
                    received = 0
                    while received < 16384:
                        received += len(tls.recv(16384))
                    tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    tls.close()
                    print("reset after", received)
                    """
                let peer = try await ExternalTool.run("python3", ["-c", script, "\(port)"], timeout: 20)
                #expect(peer.status == 0 && peer.stdout.contains("reset after"), "\(peer)")
                let (bytes, error) = try await served.value
                #expect(bytes >= 16384, "the transfer was under way: \(bytes) bytes")
                let tlsError = error as? TLSError
                #expect(tlsError?.nssName == "PR_CONNECT_RESET_ERROR" || tlsError?.kind == .truncated, "\(String(describing: error))")

                // The listener goes on.
                let serving = Task { await EchoServer.serveAll(listener) }
                try await Self.goodEcho(port: port, "after the reset")
                await listener.close()
                await serving.value
            }
        }

        @Test("half-close in both directions: each side keeps talking after the other shut its output")
        func halfClose() async throws {
            try await withTimeout(seconds: 30) {
                let pair = try await ConnectedPair.make(server: try await TestIdentities.serverConfiguration(), client: try await TestIdentities.clientConfiguration())
                let (client, server) = (pair.client, pair.server)

                // The client is done sending; the server still answers.
                try await client.write(Array("request".utf8))
                try await client.shutdownOutput()
                var request: [UInt8] = []
                while let chunk = try await server.receive() { request += chunk }
                #expect(request == Array("request".utf8))
                try await server.write(Array("response".utf8))
                try await server.shutdownOutput()
                var response: [UInt8] = []
                while let chunk = try await client.receive() { response += chunk }
                #expect(response == Array("response".utf8))
                await #expect(throws: TLSError.self) { try await client.write([1]) }
                await pair.close()
            }
        }

        @Test("the server shuts its output first; the client still sends", arguments: [TLSVersion.tls12, .tls13])
        func serverHalfCloses(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pair = try await ConnectedPair.make(server: try await TestIdentities.serverConfiguration(min: version, max: version), client: try await TestIdentities.clientConfiguration())
                let (client, server) = (pair.client, pair.server)
                try await server.write(Array("banner".utf8))
                try await server.shutdownOutput()
                var banner: [UInt8] = []
                while let chunk = try await client.receive() { banner += chunk }
                #expect(banner == Array("banner".utf8))
                try await client.write(Array("late words".utf8))
                var late: [UInt8] = []
                while late.count < 10, let chunk = try await server.receive() { late += chunk }
                #expect(late == Array("late words".utf8))
                await pair.close()
            }
        }

        @Test("a client reset during a renegotiation fails that rehandshake with the reset, and the listener goes on",
              .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
        func resetDuringRehandshake() async throws {
            try await withTimeout(seconds: 60) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(min: .tls12, max: .tls12))
                let accepted = Task { () -> TLSConnection? in
                    for try await connection in listener { return connection }
                    return nil
                }
                let client = try StreamingChild(executable: ExternalTool.path("openssl") ?? "openssl",
                                                ["s_client", "-connect", "127.0.0.1:\(listener.port)", "-tls1_2", "-quiet"], stdin: .open([]))
                let server = try #require(try await accepted.value)
                // The client freezes, so it cannot answer; then it dies, with
                // the HelloRequest unread, which makes its kernel send a reset.
                client.signal(SIGSTOP)
                let rehandshake = Task { try await server.rehandshake() }
                try await Task.sleep(for: .milliseconds(300))
                client.signal(SIGKILL)
                let error = await #expect(throws: TLSError.self) { try await rehandshake.value }
                #expect(error?.nssName == "PR_CONNECT_RESET_ERROR" || error?.kind == .closed, "\(String(describing: error))")
                await server.close()
                let serving = Task { await EchoServer.serveAll(listener) }
                try await Self.goodEcho(port: listener.port, "after the reset")
                await listener.close()
                await serving.value
                await client.kill()
            }
        }
    }
}
