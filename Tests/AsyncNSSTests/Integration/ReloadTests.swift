import AsyncNSS
import Foundation
import Testing

extension Integration {
    @Suite("Reloading a listener's identity")
    struct ReloadTests {
        static func subject(port: Int) async throws -> String? {
            let connection = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: .makeClientConfiguration(trust: .insecureNoVerification))
            let subject = connection.info.peerSubject
            await connection.close()
            return subject
        }

        @Test("reload applies a new identity to new handshakes; open connections go on; a bad reload changes nothing")
        func reloadIdentity() async throws {
            try await withTimeout(seconds: 30) {
                let first = try await TLSIdentity.selfSigned(names: ["first.test"])
                let second = try await TLSIdentity.selfSigned(names: ["second.test"])
                let listener = try await TLSListener.bind(port: 0, configuration: .makeServerConfiguration(identity: first))
                let server = Task { await EchoServer.serveAll(listener) }
                var pinned = TLSConfiguration.makeClientConfiguration(trust: .certificates(first.certificateChain))
                pinned.serverName = "first.test"
                let open = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: pinned)
                #expect(try await Self.subject(port: listener.port) == "CN=first.test")

                try await listener.reload(.makeServerConfiguration(identity: second))
                #expect(try await Self.subject(port: listener.port) == "CN=second.test")
                try await open.write([5])
                #expect(try await open.receive() == [5], "the connection made before the reload goes on")

                var broken = TLSConfiguration.makeServerConfiguration(identity: first)
                broken.identity = nil
                await #expect(throws: TLSError.self) { try await listener.reload(broken) }
                #expect(try await Self.subject(port: listener.port) == "CN=second.test")

                await open.close()
                await listener.close()
                await server.value
                await #expect(throws: TLSError.self) { try await listener.reload(.makeServerConfiguration(identity: first)) }
            }
        }

        @Test("nss-tls serve re-reads its certificate files on SIGHUP", .enabled(if: ExternalTool.isInstalled("openssl")))
        func serveReloadsOnHangup() async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let directory = try TemporaryDirectory()
                let certificate = directory.file("current.pem")
                let key = directory.file("current.key")
                func install(_ certificateSource: String, _ keySource: String) throws {
                    try Data(contentsOf: URL(fileURLWithPath: certificateSource)).write(to: URL(fileURLWithPath: certificate))
                    try Data(contentsOf: URL(fileURLWithPath: keySource)).write(to: URL(fileURLWithPath: key))
                }
                try install(pki.serverCertificate, pki.serverKey)
                let server = try await ServeProcess.start(["--cert", certificate, "--key", key])
                func signatureType() async throws -> String {
                    let output = try await ExternalTool.run("openssl", ["s_client", "-connect", "127.0.0.1:\(server.port)"], input: "", timeout: 20)
                    return (output.stdout + output.stderr).split(separator: "\n").first { $0.hasPrefix("Peer signature type:") }.map(String.init) ?? ""
                }
                #expect(try await signatureType().contains("ECDSA"))

                try install(pki.rsaServerCertificate, pki.rsaServerKey)
                server.process.signal(SIGHUP)
                let line = await server.process.stderr.waitForLine(seconds: 15) { $0.contains("SIGHUP: reloaded") }
                #expect(line != nil, "\(server.process.transcript)")
                #expect(try await signatureType().contains("RSA"))
                #expect(await server.process.stop() == 0, "\(server.process.transcript)")
            }
        }

        @Test("nss-tls serve --reload-on-change picks up new certificate files without a signal", .enabled(if: ExternalTool.isInstalled("openssl")))
        func serveReloadsOnChange() async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let directory = try TemporaryDirectory()
                let (certificate, key) = (directory.file("current.pem"), directory.file("current.key"))
                func install(_ certificateSource: String, _ keySource: String) throws {
                    try Data(contentsOf: URL(fileURLWithPath: certificateSource)).write(to: URL(fileURLWithPath: certificate), options: .atomic)
                    try Data(contentsOf: URL(fileURLWithPath: keySource)).write(to: URL(fileURLWithPath: key), options: .atomic)
                }
                try install(pki.serverCertificate, pki.serverKey)
                let server = try await ServeProcess.start(["--cert", certificate, "--key", key, "--reload-on-change"])
                try install(pki.rsaServerCertificate, pki.rsaServerKey)
                // The watch notices the change, or reloads as it starts if the
                // files changed before it did: either way new handshakes get RSA.
                var transcript = ""
                let deadline = ContinuousClock.now + .seconds(20)
                while ContinuousClock.now < deadline {
                    let output = try await ExternalTool.run("openssl", ["s_client", "-connect", "127.0.0.1:\(server.port)"], input: "", timeout: 20)
                    transcript = output.stdout + output.stderr
                    if transcript.contains("Peer signature type: RSA") { break }
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(transcript.contains("Peer signature type: RSA"), "\(transcript)\n\(server.process.transcript)")
                #expect(await server.process.stop() == 0, "\(server.process.transcript)")
            }
        }

        /// A self-signed certificate and PKCS#8 key for `name`, as PEM files in `directory`.
        private static func writeIdentity(_ name: String, in directory: TemporaryDirectory, prefix: String) async throws {
            try await SelfSignedFiles.make(certificate: directory.file("\(prefix).pem"), key: directory.file("\(prefix).key"), subject: "/CN=\(name)")
        }

        /// The subject a full handshake sees. A resumed session would report
        /// the identity it was made with, before the reload.
        private static func freshSubject(port: Int) async throws -> String? {
            NSSRuntime.clearClientSessionCache()
            return try await subject(port: port)
        }

        /// Waits until a new connection sees `subject`.
        private static func waitForSubject(_ subject: String, port: Int, seconds: Double = 10) async throws -> Bool {
            let deadline = ContinuousClock.now + .seconds(seconds)
            while ContinuousClock.now < deadline {
                if try await Self.freshSubject(port: port) == "CN=\(subject)" { return true }
                try await Task.sleep(for: .milliseconds(50))
            }
            return false
        }

        @Test("reloadWhenFilesChange returns as soon as the listener closes, long before its next look")
        func watchEndsWithTheListener() async throws {
            try await withTimeout(seconds: 30) {
                let directory = try TemporaryDirectory()
                let file = directory.file("watched")
                try Data("unchanged".utf8).write(to: URL(fileURLWithPath: file))
                let configuration = try await TestIdentities.serverConfiguration()
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: configuration, logger: logger)
                // An hour between looks: only the listener's closing can end
                // the watch within the test's timeout.
                let watcher = Task { try await listener.reloadWhenFilesChange([file], checkingEvery: .seconds(3600)) { configuration } }
                #expect(await log.waitForLine(containing: ["watching files: reloaded the configuration once"]) != nil, "\(log.all)")
                await listener.close()
                // Cancelled with the test on a timeout, so a watch that goes on fails it at once.
                try await withTaskCancellationHandler { try await watcher.value } onCancel: { watcher.cancel() }
            }
        }

        @Test("reloadWhenFilesChange: new files reach new handshakes, a half-written pair is logged and skipped, cancellation stops it",
              .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl"))
        func reloadWhenFilesChange() async throws {
            try await withTimeout(seconds: 60) {
                let directory = try TemporaryDirectory()
                try await Self.writeIdentity("first.test", in: directory, prefix: "first")
                try await Self.writeIdentity("second.test", in: directory, prefix: "second")
                let (certificate, key) = (directory.file("server.pem"), directory.file("server.key"))
                func install(_ prefix: String) throws {
                    for (from, to) in [("\(prefix).pem", certificate), ("\(prefix).key", key)] {
                        // Written next to the target and renamed over it, as renewal tools do.
                        try Data(contentsOf: URL(fileURLWithPath: directory.file(from))).write(to: URL(fileURLWithPath: to), options: .atomic)
                    }
                }
                try install("first")
                @Sendable func configuration() async throws -> TLSConfiguration {
                    .makeServerConfiguration(identity: try await .pem(certificateChainFile: certificate, privateKeyFile: key))
                }
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: try await configuration(), logger: logger)
                let server = Task { await EchoServer.serveAll(listener) }
                let watcher = Task { try await listener.reloadWhenFilesChange([certificate, key], checkingEvery: .milliseconds(50), makeConfiguration: configuration) }
                let open = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: .makeClientConfiguration(trust: .insecureNoVerification))
                #expect(open.info.peerSubject == "CN=first.test")

                try install("second")
                #expect(try await Self.waitForSubject("second.test", port: listener.port), "\(log.all)")
                #expect(await log.waitForLine(containing: ["notice files changed: reloaded"]) != nil, "\(log.all)")
                try await open.write([7])
                #expect(try await open.receive() == [7], "the connection made before the reload goes on")

                // Only the certificate changes: it does not match the key, so the reload fails and nothing changes.
                try Data(contentsOf: URL(fileURLWithPath: directory.file("first.pem"))).write(to: URL(fileURLWithPath: certificate), options: .atomic)
                #expect(await log.waitForLine(containing: ["warning files changed, but the reload failed", "does not match"]) != nil, "\(log.all)")
                let afterFailure = try await Self.freshSubject(port: listener.port)
                #expect(afterFailure == "CN=second.test", "\(log.all)")
                // The key follows: the next look reloads.
                try Data(contentsOf: URL(fileURLWithPath: directory.file("first.key"))).write(to: URL(fileURLWithPath: key), options: .atomic)
                #expect(try await Self.waitForSubject("first.test", port: listener.port), "\(log.all)")

                watcher.cancel()
                await #expect(throws: CancellationError.self) { try await watcher.value }
                await open.close()
                await listener.close()
                await server.value
            }
        }
    }
}
