import AsyncNSS
import Foundation
import Testing

extension Integration {
    @Suite("Bad peers fail alone")
    struct BadInputTests {
        /// Starts an echo listener whose log the test can read.
        private func listener() async throws -> (TLSListener, CapturingLogHandler.Store, Task<Void, Never>) {
            let (logger, store) = CapturingLogHandler.logger()
            let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(), logger: logger)
            return (listener, store, Task { await EchoServer.serveAll(listener) })
        }

        /// A good client that must keep working whatever the bad one did.
        private func goodEcho(port: Int, _ message: String) async throws {
            let client = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: try await TestIdentities.clientConfiguration())
            try await client.write(Array(message.utf8))
            var iterator = client.inbound.makeAsyncIterator()
            var received: [UInt8] = []
            while received.count < message.utf8.count, let chunk = try await iterator.next() { received += chunk }
            #expect(String(decoding: received, as: UTF8.self) == message)
            await client.close()
        }

        @Test("random bytes instead of a ClientHello")
        func randomBytes() async throws {
            try await withTimeout(seconds: 30) {
                let (listener, log, server) = try await listener()
                let port = listener.port
                // A record header with a content type that does not exist, then noise.
                let garbage: [UInt8] = [0x99, 0x03, 0x03, 0x01, 0x00] + (0..<2048).map { _ in UInt8.random(in: 0...255) }
                async let bad: [UInt8] = onOwnThread {
                    let peer = try RawTCP(port: port)
                    peer.send(garbage)
                    let answer = peer.readAll()
                    peer.close()
                    return answer
                }
                try await goodEcho(port: port, "still serving")
                let answer = try await bad
                // NSS answers garbage with an alert record (content type 21) or just closes.
                #expect(answer.isEmpty || answer.first == 21)
                let line = await log.waitForLine(containing: ["handshake failed", "error=handshake with 127.0.0.1:"])
                #expect(line != nil, "\(log.all)")
                try await goodEcho(port: port, "and again")
                await listener.close()
                await server.value
            }
        }

        @Test("TCP reset in the middle of the handshake")
        func resetMidHandshake() async throws {
            try await withTimeout(seconds: 30) {
                let (listener, log, server) = try await listener()
                let port = listener.port
                async let bad: Void = onOwnThread {
                    let peer = try RawTCP(port: port)
                    // A handshake record header announcing 512 bytes, then part of them.
                    peer.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03] + [UInt8](repeating: 0x42, count: 100))
                    Thread.sleep(forTimeInterval: 0.2)
                    peer.reset()
                }
                try await goodEcho(port: port, "unaffected")
                try await bad
                let line = await log.waitForLine(containing: ["handshake failed", "PR_CONNECT_RESET_ERROR"])
                #expect(line != nil, "\(log.all)")
                try await goodEcho(port: port, "after the reset")
                await listener.close()
                await server.value
            }
        }

        @Test("a wrong host name fails that client only")
        func wrongHostName() async throws {
            try await withTimeout(seconds: 30) {
                let (listener, log, server) = try await listener()
                var configuration = try await TestIdentities.clientConfiguration()
                configuration.serverName = "wrong.example"
                let error = await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: configuration)
                }
                #expect(error?.nssName == "SSL_ERROR_BAD_CERT_DOMAIN")
                #expect(error?.description.hasPrefix("handshake with 127.0.0.1:\(listener.port): SSL_ERROR_BAD_CERT_DOMAIN: ") == true)
                try await goodEcho(port: listener.port, "right name")
                let line = await log.waitForLine(containing: ["handshake failed"])
                #expect(line != nil, "\(log.all)")
                await listener.close()
                await server.value
            }
        }

        @Test("a peer that closes TCP without close_notify is reported as truncation")
        func truncation() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let accepted = Task { () -> TLSError? in
                    for try await connection in listener {
                        do {
                            for try await _ in connection.inbound {}
                            return nil
                        } catch let error as TLSError {
                            await connection.close()
                            return error
                        }
                    }
                    return nil
                }
                // openssl s_client killed mid-session leaves no close_notify.
                let port = listener.port
                let client = try ChildProcess("openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-quiet"])
                try await Task.sleep(for: .milliseconds(500))
                client.signal(SIGKILL)
                let error = try await accepted.value
                #expect(error?.kind == .truncated)
                client.stop()
                await listener.close()
            }
        }
    }
}
