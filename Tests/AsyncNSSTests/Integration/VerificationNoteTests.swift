import AsyncNSS
import Foundation
import Testing

extension Integration {
    /// Where NSS's text for a refused certificate misleads, the error keeps
    /// NSS's code and name and adds what is true and what to do.
    @Suite("Verification errors say what was checked and what to change")
    struct VerificationNoteTests {
        private static func refusal(_ identity: TLSIdentity, client: TLSConfiguration, host: String = "127.0.0.1") async throws -> TLSError? {
            let listener = try await TLSListener.bind(port: 0, configuration: .makeServerConfiguration(identity: identity))
            let server = Task { await EchoServer.serveAll(listener) }
            let error = await #expect(throws: TLSError.self) {
                _ = try await TLSConnection.connect(host: host, port: listener.port, configuration: client)
            }
            await listener.close()
            await server.value
            return error
        }

        @Test("an issuer the trust does not know: nobody marked anything; the trust in effect and how to add the CA")
        func unknownIssuer() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
                let directory = try TemporaryDirectory()
                try await SelfSignedFiles.make(certificate: directory.file("other.pem"), key: directory.file("other.key"), subject: "/CN=Other CA")
                let anchors = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: directory.file("other.pem")))
                let error = try await Self.refusal(identity, client: anchors, host: "localhost")
                #expect(["SEC_ERROR_UNKNOWN_ISSUER", "SEC_ERROR_UNTRUSTED_ISSUER"].contains(error?.nssName ?? ""), "\(String(describing: error))")
                #expect(error?.message.contains("Nothing was marked untrusted") == true, "\(String(describing: error))")
                #expect(error?.message.contains("the 1 trust anchor given in the configuration") == true, "\(String(describing: error))")
                #expect(error?.message.contains("issued by CN=AsyncNSS Test CA") == true, "\(String(describing: error))")
                #expect(error?.message.contains("--ca FILE") == true, "\(String(describing: error))")

                // A certificate no database of the process knows (the test
                // CA is trusted in the test database, which other suites open).
                try await SelfSignedFiles.make(certificate: directory.file("alone.pem"), key: directory.file("alone.key"), subject: "/CN=localhost", altName: "DNS:localhost")
                let alone = try await TLSIdentity.pem(certificateChainFile: directory.file("alone.pem"), privateKeyFile: directory.file("alone.key"))
                let system = try await Self.refusal(alone, client: .makeClientConfiguration(), host: "localhost")
                #expect(system?.message.contains("the system's root CAs (TLSTrust.systemRoots)") == true, "\(String(describing: system))")
            }
        }

        @Test("a name the certificate does not have: both the name checked and the certificate's names")
        func badDomain() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
                var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                client.serverName = "wrong.example"
                let error = try await Self.refusal(identity, client: client)
                #expect(error?.nssName == "SSL_ERROR_BAD_CERT_DOMAIN", "\(String(describing: error))")
                #expect(error?.message.contains("The name checked was \"wrong.example\"") == true, "\(String(describing: error))")
                #expect(error?.message.contains("DNS:localhost, IP:127.0.0.1, IP:0:0:0:0:0:0:0:1") == true, "\(String(describing: error))")
            }
        }

        @Test("a ClientHello with no ALPN protocol in common is not called malformed only")
        func noALPNOverlap() async throws {
            try await withTimeout(seconds: 30) {
                var configuration = try await TestIdentities.serverConfiguration()
                configuration.applicationProtocols = ["h2"]
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: configuration, logger: logger)
                let server = Task { await EchoServer.serveAll(listener) }
                var client = try await TestIdentities.clientConfiguration()
                client.applicationProtocols = ["http/1.1"]
                let error = await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                }
                #expect(error?.nssName == "SSL_ERROR_NEXT_PROTOCOL_NO_PROTOCOL" || error?.nssName?.contains("ALERT") == true, "\(String(describing: error))")
                let line = await log.waitForLine(containing: ["handshake failed", "SSL_ERROR_RX_MALFORMED_CLIENT_HELLO"])
                #expect(line?.contains("it offers no ALPN protocol that this server accepts") == true, "\(log.all)")
                await listener.close()
                await server.value
            }
        }

        @Test("a certificate that is not valid yet is not called expired only",
              .enabled(if: ExternalTool.isInstalled("certutil"), "needs certutil: apt-get install libnss3-tools"))
        func notYetValid() async throws {
            try await withTimeout(seconds: 60) {
                let directory = try TemporaryDirectory()
                let database = "sql:" + directory.file("db")
                try FileManager.default.createDirectory(atPath: directory.file("db"), withIntermediateDirectories: true)
                _ = try directory.write("noise", String(repeating: "0123456789abcdef", count: 64))
                for arguments in [
                    ["-N", "-d", database, "--empty-password"],
                    // Valid from a month from now (-w 1), for 12 months.
                    ["-S", "-x", "-n", "future", "-s", "CN=localhost", "-t", "u,u,u", "-k", "ec", "-q", "nistp256", "-v", "12", "-w", "1",
                     "--extSAN", "dns:localhost", "-d", database, "-z", directory.file("noise")],
                ] {
                    let output = try await ExternalTool.run("certutil", arguments)
                    #expect(output.status == 0, "\(output)")
                }
                let identity = try await TLSIdentity.database(database, nickname: "future")
                let client = TLSConfiguration.makeClientConfiguration(trust: .certificates(identity.certificateChain))
                let error = try await Self.refusal(identity, client: client, host: "localhost")
                #expect(error?.nssName == "SEC_ERROR_EXPIRED_CERTIFICATE", "\(String(describing: error))")
                #expect(error?.message.contains("The certificate is not valid yet: its validity starts at ") == true, "\(String(describing: error))")
            }
        }
    }
}
