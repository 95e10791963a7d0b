import AsyncNSS
import Foundation
import Testing

extension Integration {
    /// Runs each program under Examples/ the way its header comment says.
    @Suite("Examples")
    struct ExamplesTests {
        static func path(_ name: String) -> String {
            (ToolRun.binary as NSString).deletingLastPathComponent + "/" + name
        }

        /// Runs an example to completion and returns its exit status and output.
        static func run(_ name: String, _ arguments: [String], timeout: Double = 30) async throws -> (status: Int32?, output: String) {
            let child = try StreamingChild(executable: path(name), arguments, input: [])
            let status = await child.exitStatus(within: timeout)
            if status == nil { await child.kill() }
            _ = await child.stdout.waitUntilFinished(seconds: 5)
            return (status, child.transcript)
        }

        /// Starts a server example and waits until it listens on `port` (its
        /// announcement sits in stdout's buffer while stdout is a pipe).
        static func start(_ name: String, _ arguments: [String], port: Int) async throws -> StreamingChild {
            let child = try StreamingChild(executable: path(name), arguments, input: [])
            do {
                try await RawTCP.waitUntilListening(port: port, seconds: 30)
            } catch {
                await child.kill()
                Issue.record("\(name) did not start: \(child.transcript)")
                throw error
            }
            return child
        }

        static func echo(port: Int, trust: TLSTrust = .insecureNoVerification) async throws -> Bool {
            let connection = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: .makeClientConfiguration(trust: trust))
            try await connection.write(Array("ping".utf8))
            var received: [UInt8] = []
            while received.count < 4, let chunk = try await connection.receive() { received += chunk }
            await connection.close()
            return received == Array("ping".utf8)
        }

        @Test("EchoServer echoes")
        func echoServer() async throws {
            try await withTimeout(seconds: 60) {
                let port = try RawTCP.freePort()
                let server = try await Self.start("EchoServer", ["\(port)"], port: port)
                #expect(try await Self.echo(port: port))
                await server.kill()
            }
        }

        @Test("HTTPSHello asks MutualTLSClient for its certificate on /private; without one, 403",
              .enabled(if: ExternalTool.isInstalled("openssl", "curl"), "needs openssl and curl"))
        func httpsHelloAndMutualTLSClient() async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let port = try RawTCP.freePort()
                let server = try await Self.start("HTTPSHello", ["\(port)", pki.serverCertificate, pki.serverKey, pki.caCertificate], port: port)
                let (status, output) = try await Self.run("MutualTLSClient", ["localhost", "\(port)", pki.caCertificate, pki.clientCertificate, pki.clientKey, "/private"])
                #expect(status == 0, "\(output)")
                #expect(output.contains("HTTP/1.1 200 OK") && output.contains("hello, ") && output.contains("CN=AsyncNSS Test Client"), "\(output)")

                let curl = try await ExternalTool.run("curl", ["-sS", "--max-time", "20", "--cacert", pki.caCertificate, "https://localhost:\(port)/private"])
                #expect(curl.stdout.contains("a client certificate is needed"), "\(curl)")
                let home = try await ExternalTool.run("curl", ["-sS", "--max-time", "20", "--cacert", pki.caCertificate, "https://localhost:\(port)/"])
                #expect(home.stdout.hasPrefix("hello over TLSv1."), "\(home)")
                await server.kill()
            }
        }

        @Test("StartTLS upgrades its own line protocol")
        func startTLS() async throws {
            try await withTimeout(seconds: 60) {
                let (status, output) = try await Self.run("StartTLS", [])
                #expect(status == 0, "\(output)")
                for expected in ["C: HELLO -> 250 hello", "C: STARTTLS -> 220 go ahead", "upgraded: TLSv1.3", "C: secret -> echo: secret"] {
                    #expect(output.contains(expected), "\(expected)\n\(output)")
                }
            }
        }

        @Test("ServiceLifecycleServer echoes and stops gracefully on SIGTERM")
        func serviceLifecycleServer() async throws {
            try await withTimeout(seconds: 60) {
                let port = try RawTCP.freePort()
                let server = try await Self.start("ServiceLifecycleServer", ["\(port)"], port: port)
                #expect(try await Self.echo(port: port))
                server.signal(SIGTERM)
                let status = await server.exitStatus(within: 20)
                #expect(status == 0, "\(server.transcript)")
                _ = await server.stdout.waitUntilFinished(seconds: 5)
                #expect(server.stdout.text.contains("stopped"), "\(server.transcript)")
                if status == nil { await server.kill() }
            }
        }

        @Test("HSMServer serves curl with its key on a SoftHSM2 token",
              .enabled(if: TestToken.isAvailable && ExternalTool.isInstalled("curl"), TestToken.missingReason))
        func hsmServer() async throws {
            try await withTimeout(seconds: 60) {
                let (pki, token) = (try await TestPKI.shared(), try await TestToken.shared())
                let port = try RawTCP.freePort()
                let uri = TestToken.keyURI + "?pin-source=" + token.pinFile
                let server = try await Self.start("HSMServer", ["\(port)", token.modulePath, uri, pki.serverCertificate], port: port)
                let curl = try await ExternalTool.run("curl", ["-sS", "--max-time", "20", "--cacert", pki.caCertificate, "https://localhost:\(port)/"])
                #expect(curl.stdout.hasPrefix("hello from a key on a PKCS#11 token, over TLSv1."), "\(curl)\n\(server.transcript)")
                await server.kill()
            }
        }
    }
}
