import AsyncNSS
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    /// `--keylog` as a user would check it: tshark, given the file, decrypts
    /// a capture of the loopback session and finds the request in it.
    @Suite("nss-tls --keylog, decrypted by tshark", .enabled(if: ExternalTool.isInstalled("tshark", "curl", "openssl") && geteuid() == 0, "needs tshark, curl and openssl, and root to capture on loopback"))
    struct KeyLogToolTests {
        /// tshark capturing `port` on loopback into `file`, once it says it captures.
        static func capture(port: Int, into file: String) async throws -> StreamingChild {
            let tshark = try StreamingChild(executable: ExternalTool.path("tshark") ?? "tshark", ["-i", "lo", "-f", "tcp port \(port)", "-w", file], input: [])
            guard await tshark.stderr.waitForLine(seconds: 20, where: { $0.contains("Capturing on") }) != nil else {
                await tshark.kill()
                throw CaptureNotStarted(transcript: tshark.transcript)
            }
            // tshark says so a moment before its filter is in place; a
            // ClientHello sent at once could be missed, and without it
            // nothing can be decrypted.
            try await Task.sleep(for: .seconds(1))
            return tshark
        }

        struct CaptureNotStarted: Error, CustomStringConvertible {
            let transcript: String
            var description: String { "tshark did not start capturing:\n\(transcript)" }
        }

        /// The HTTP request targets tshark finds in `capture`, decrypting with `keys` (nil: without).
        static func requestTargets(in capture: String, port: Int, keys: String?) async throws -> String {
            var arguments = ["-r", capture, "-d", "tcp.port==\(port),tls", "-Y", "http.request", "-T", "fields", "-e", "http.request.uri"]
            if let keys { arguments += ["-o", "tls.keylog_file:\(keys)"] }
            return try await ExternalTool.run("tshark", arguments, timeout: 60).stdout
        }

        /// Stops the capture so that its file is complete.
        static func stop(_ tshark: StreamingChild) async {
            // Let the last packets reach the capture first.
            try? await Task.sleep(for: .milliseconds(500))
            tshark.signal(SIGINT)
            if await tshark.exitStatus(within: 20) == nil { await tshark.kill() }
        }

        @Test("serve --keylog: tshark decrypts curl's request, and cannot without the file")
        func serveKeyLog() async throws {
            try await withTimeout(seconds: 120) {
                let directory = try TemporaryDirectory()
                let keys = directory.file("server.keys")
                let pcap = directory.file("serve.pcapng")
                let server = try await ServeProcess.start(["--keylog", keys])
                let tshark = try await Self.capture(port: server.port, into: pcap)
                let probe = "/keylog-probe-\(UUID().uuidString.prefix(8))"
                let curl = try await ExternalTool.run("curl", ["-sk", "--tlsv1.3", "--max-time", "20", "https://127.0.0.1:\(server.port)\(probe)"])
                #expect(curl.status == 0, "\(curl)")
                await Self.stop(tshark)
                _ = await server.process.stop()
                #expect(server.process.stderr.text.contains("TLS key log on"), "the key log is announced loudly: \(server.process.transcript)")
                let decrypted = try await Self.requestTargets(in: pcap, port: server.port, keys: keys)
                let keyLines = (try? String(contentsOfFile: keys, encoding: .utf8)) ?? ""
                #expect(decrypted.contains(probe), "tshark found \(decrypted.debugDescription) with the key log:\n\(keyLines)\n\(server.process.transcript)")
                let opaque = try await Self.requestTargets(in: pcap, port: server.port, keys: nil)
                #expect(!opaque.contains(probe), "tshark read the request without the key log")
            }
        }

        @Test("connect --keylog against openssl s_server: tshark decrypts the request")
        func connectKeyLog() async throws {
            try await withTimeout(seconds: 120) {
                let directory = try TemporaryDirectory()
                let pki = try await TestPKI.shared()
                let keys = directory.file("client.keys")
                let pcap = directory.file("connect.pcapng")
                let port = try RawTCP.freePort()
                let openssl = try StreamingChild(executable: ExternalTool.path("openssl") ?? "openssl",
                                                 ["s_server", "-accept", "\(port)", "-tls1_3", "-cert", pki.serverCertificate, "-key", pki.serverKey, "-www"], input: [])
                defer { Task { await openssl.kill() } }
                try await RawTCP.waitUntilListening(port: port)
                let tshark = try await Self.capture(port: port, into: pcap)
                let probe = "/keylog-probe-\(UUID().uuidString.prefix(8))"
                let connect = try await ToolRun.run(["connect", "127.0.0.1:\(port)", "--ca", pki.caCertificate, "--server-name", "localhost", "--keylog", keys],
                                                    input: "GET \(probe) HTTP/1.0\r\n\r\n")
                #expect(connect.stdout.contains("HTTP/1.0 200 ok"), "\(connect)")
                await Self.stop(tshark)
                let decrypted = try await Self.requestTargets(in: pcap, port: port, keys: keys)
                #expect(decrypted.contains(probe), "tshark found \(decrypted.debugDescription) with the key log")
            }
        }
    }
}
