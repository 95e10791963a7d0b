import AsyncNSS
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    /// `serve --ocsp-response` and `connect --revocation` as a user runs them.
    @Suite("nss-tls OCSP stapling and revocation", .enabled(if: TestOCSP.isAvailable, "needs openssl and faketime: apt-get install openssl faketime"))
    struct OCSPToolTests {
        /// `openssl s_client -status` against `port`: its output.
        private static func statusRequest(port: Int, ca: String) async throws -> ExternalTool.Output {
            try await ExternalTool.run("openssl", [
                "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-status",
                "-CAfile", ca, "-verify_return_error", "-ign_eof",
            ], input: "GET / HTTP/1.0\r\n\r\n")
        }

        @Test("serve --ocsp-response staples for openssl s_client -status, and SIGHUP staples the new file")
        func serveStaplesAndReloads() async throws {
            try await withTimeout(seconds: 90) {
                let ocsp = try await TestOCSP.shared()
                let directory = try TemporaryDirectory()
                let response = directory.file("staple.der")
                try FileManager.default.copyItem(atPath: ocsp.response(.goodEC), toPath: response)
                let server = try await ServeProcess.start([
                    "--cert", ocsp.certificate(.ec), "--key", ocsp.key(.ec), "--ocsp-response", response, "--ocsp-issuer", ocsp.caCertificate,
                ])
                let first = try await Self.statusRequest(port: server.port, ca: ocsp.caCertificate)
                #expect(first.status == 0, "\(first)")
                #expect(first.stdout.contains("Cert Status: good"), "\(first)")
                #expect(first.stdout.contains("Responder Id: CN = AsyncNSS OCSP Test CA"), "\(first)")

                // The delegated responder's answer replaces the CA's.
                try FileManager.default.removeItem(atPath: response)
                try FileManager.default.copyItem(atPath: ocsp.response(.delegatedEC), toPath: response)
                server.process.signal(SIGHUP)
                #expect(await server.process.stderr.waitForLine(seconds: 20, where: { $0.contains("SIGHUP: reloaded") }) != nil, "\(server.process.transcript)")
                let second = try await Self.statusRequest(port: server.port, ca: ocsp.caCertificate)
                #expect(second.stdout.contains("Cert Status: good"), "\(second)")
                #expect(second.stdout.contains("Responder Id: CN = ocsp-signer"), "\(second)")

                // An expired response is refused on reload; the good one stays.
                try FileManager.default.removeItem(atPath: response)
                try FileManager.default.copyItem(atPath: ocsp.response(.expiredEC), toPath: response)
                server.process.signal(SIGHUP)
                #expect(await server.process.stderr.waitForLine(seconds: 20, where: { $0.contains("expired") }) != nil, "\(server.process.transcript)")
                let third = try await Self.statusRequest(port: server.port, ca: ocsp.caCertificate)
                #expect(third.stdout.contains("Responder Id: CN = ocsp-signer"), "\(third)")
                _ = await server.process.stop()
            }
        }

        @Test("serve refuses to start with an expired response, with the reason")
        func serveRefusesExpired() async throws {
            try await withTimeout(seconds: 60) {
                let ocsp = try await TestOCSP.shared()
                let output = try await ToolRun.run([
                    "serve", "--port", "0", "--cert", ocsp.certificate(.ec), "--key", ocsp.key(.ec),
                    "--ocsp-response", ocsp.response(.expiredEC), "--ocsp-issuer", ocsp.caCertificate,
                ], input: "")
                #expect(output.status == 1, "\(output)")
                #expect(output.stderr.contains("expired"), "\(output)")
            }
        }

        @Test("connect prints the staple's status; --revocation staple refuses a revoked one; --crl refuses a listed certificate")
        func connectChecks() async throws {
            try await withTimeout(seconds: 90) {
                let ocsp = try await TestOCSP.shared()
                for (leaf, response) in [(TestOCSP.Leaf.ec, TestOCSP.Response.goodEC), (.revoked, .revoked)] {
                    let port = try RawTCP.freePort()
                    let server = try ChildProcess("openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", ocsp.certificate(leaf), "-key", ocsp.key(leaf), "-www", "-status_file", ocsp.response(response)])
                    defer { server.stop() }
                    try await RawTCP.waitUntilListening(port: port)
                    let request = "GET / HTTP/1.0\r\n\r\n"
                    let plain = try await ToolRun.run(["connect", "localhost:\(port)", "--ca", ocsp.caCertificate], input: request)
                    #expect(plain.stderr.contains("ocsp-staple: \(leaf == .ec ? "good" : "revoked")"), "\(plain)")
                    let strict = try await ToolRun.run(["connect", "localhost:\(port)", "--ca", ocsp.caCertificate, "--revocation", "staple"], input: request)
                    let crl = try await ToolRun.run(["connect", "localhost:\(port)", "--ca", ocsp.caCertificate, "--crl", ocsp.crl], input: request)
                    if leaf == .ec {
                        #expect(strict.status == 0, "\(strict)")
                        #expect(crl.status == 0, "\(crl)")
                    } else {
                        #expect(strict.status == 1 && strict.stderr.contains("SEC_ERROR_REVOKED_CERTIFICATE"), "\(strict)")
                        #expect(crl.status == 1 && crl.stderr.contains("SEC_ERROR_REVOKED_CERTIFICATE"), "\(crl)")
                    }
                }
            }
        }
    }
}
