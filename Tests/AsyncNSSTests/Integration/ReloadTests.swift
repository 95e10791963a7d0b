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
    }
}
