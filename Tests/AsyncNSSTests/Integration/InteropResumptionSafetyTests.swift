import AsyncNSS
import Foundation
import Testing

extension Integration {
    /// The resumption safety rules of TrustTests, with OpenSSL as the peer:
    /// a session never carries authentication from one configuration or
    /// client certificate over to a connection that did not earn it.
    @Suite("Interop: resumption never skips verification or lends a client certificate (openssl in both roles)",
           .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
    struct InteropResumptionSafetyTests {
        static let versions: [TLSVersion] = [.tls12, .tls13]

        static func versionFlag(_ version: TLSVersion) -> String { version == .tls12 ? "-tls1_2" : "-tls1_3" }

        @Test("a session our client made without verification is not resumed by a verifying client; openssl s_server", arguments: versions)
        func unverifiedSessionNotReused(version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                // A self-signed server that no anchor of this process trusts.
                let directory = try TemporaryDirectory()
                let certificate = directory.file("stranger.pem"), key = directory.file("stranger.key")
                let made = try await ExternalTool.run("openssl", [
                    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", certificate,
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-days", "2",
                ])
                #expect(made.exitedCleanly, "\(made)")
                let port = try RawTCP.freePort()
                let server = try ChildProcess("openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", certificate, "-key", key, Self.versionFlag(version), "-www"])
                defer { server.stop() }
                try await RawTCP.waitUntilListening(port: port)
                NSSRuntime.clearClientSessionCache()

                let insecure = TLSConfiguration.makeClientConfiguration(trust: .insecureNoVerification)
                for _ in 0..<2 {
                    let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: insecure)
                    try await connection.write(Array("GET / HTTP/1.0\r\n\r\n".utf8))
                    #expect(try await TestServers.read(connection, through: "</HTML>").hasPrefix("HTTP/1.0 200 ok"))
                    await connection.close()
                }
                // The insecure configuration resumes its own session: the
                // session is there to be (mis)used.
                let again = try await TLSConnection.connect(host: "localhost", port: port, configuration: insecure)
                #expect(again.info.resumed, "control: the unverified client did not resume its own session")
                await again.close()

                let pki = try await TestPKI.shared()
                let verifying = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                let error = await #expect(throws: TLSError.self, "a verifying client connected to a server it does not trust") {
                    let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: verifying)
                    await connection.close()
                }
                // A full handshake: NSS knows the certificate from the
                // unverified connections, and finds its issuer untrusted.
                #expect(error?.nssName == "SEC_ERROR_UNTRUSTED_ISSUER", "\(String(describing: error))")
            }
        }

        /// Runs `openssl s_client` once against our server, saving its
        /// session to `sessionOut` or offering the one in `sessionIn`.
        private static func opensslClient(port: Int, version: TLSVersion, pki: TestPKI, certificate: Bool, sessionIn: String? = nil, sessionOut: String? = nil) async throws -> ExternalTool.Output {
            var arguments = ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", Self.versionFlag(version),
                             "-CAfile", pki.caCertificate, "-verify_return_error", "-ign_eof"]
            if certificate { arguments += ["-cert", pki.clientCertificate, "-key", pki.clientKey] }
            if let sessionIn { arguments += ["-sess_in", sessionIn] }
            if let sessionOut { arguments += ["-sess_out", sessionOut] }
            let output = try await ExternalTool.run("openssl", arguments, input: "ping\n")
            #expect(output.exitedCleanly, "\(output)")
            return output
        }

        @Test("our server that asks for client certificates makes openssl s_client, with and without one, do full handshakes", arguments: versions)
        func clientCertificateSessionNotLent(version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                var configuration = TLSConfiguration.makeServerConfiguration(identity: try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey))
                configuration.trust = try await .pem(file: pki.caCertificate)
                configuration.clientCertificatePolicy = .request
                configuration.minimumVersion = version
                configuration.maximumVersion = version
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: configuration, logger: logger)
                let server = Task {
                    await TestServers.respond(listener, until: "\n") { _, info in
                        "client: \(info.peerSubject ?? "none") resumed: \(info.resumed)\n"
                    }
                }
                let directory = try TemporaryDirectory()
                let session = directory.file("session.pem")

                let anonymous = directory.file("anonymous.pem")
                let first = try await Self.opensslClient(port: listener.port, version: version, pki: pki, certificate: true, sessionOut: session)
                #expect(first.stdout.contains("client: O=AsyncNSS,CN=AsyncNSS Test Client resumed: false"), "\(first)")
                let second = try await Self.opensslClient(port: listener.port, version: version, pki: pki, certificate: false, sessionOut: anonymous)
                #expect(second.stdout.contains("client: none resumed: false"), "\(second)")
                if version == .tls13 {
                    // No ticket is issued, so s_client has no session to save.
                    #expect(!FileManager.default.fileExists(atPath: session) && !FileManager.default.fileExists(atPath: anonymous))
                } else {
                    // A TLS 1.2 session ID is saved, and refused when offered:
                    // without the certificate, a full handshake and no client identity;
                    let bare = try await Self.opensslClient(port: listener.port, version: version, pki: pki, certificate: false, sessionIn: session)
                    #expect(bare.stdout.contains("client: none resumed: false") && bare.stdout.contains("New, TLSv1.2"), "\(bare)")
                    // with it, after an anonymous session, the certificate is presented again.
                    let withCertificate = try await Self.opensslClient(port: listener.port, version: version, pki: pki, certificate: true, sessionIn: anonymous)
                    #expect(withCertificate.stdout.contains("client: O=AsyncNSS,CN=AsyncNSS Test Client resumed: false"), "\(withCertificate)")
                    #expect(withCertificate.stdout.contains("New, TLSv1.2"), "\(withCertificate)")
                }
                await listener.close()
                await server.value
                #expect(log.problems().isEmpty, "\(log.all)")
            }
        }
    }
}
