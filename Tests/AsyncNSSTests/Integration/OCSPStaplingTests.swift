import AsyncNSS
import Foundation
import Testing

extension Integration {
    @Suite("OCSP stapling and revocation, against openssl s_server, s_client and openssl ocsp",
           .enabled(if: TestOCSP.isAvailable, "needs openssl and faketime: apt-get install openssl faketime"))
    struct OCSPStaplingTests {
        static let versions: [TLSVersion] = [.tls12, .tls13]

        private static func client(_ ocsp: TestOCSP, revocation: RevocationPolicy, version: TLSVersion) async throws -> TLSConfiguration {
            var configuration = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: ocsp.caCertificate))
            configuration.revocation = revocation
            configuration.minimumVersion = version
            configuration.maximumVersion = version
            return configuration
        }

        /// Runs `openssl s_server` with `leaf`, stapling `response` if given.
        private static func withOpenSSLServer<T: Sendable>(
            _ ocsp: TestOCSP, _ leaf: TestOCSP.Leaf, stapling response: TestOCSP.Response?,
            _ body: @Sendable (Int) async throws -> T
        ) async throws -> T {
            let port = try RawTCP.freePort()
            var arguments = ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", ocsp.certificate(leaf), "-key", ocsp.key(leaf), "-www"]
            if let response { arguments += ["-status_file", ocsp.response(response)] }
            let server = try ChildProcess("openssl", arguments)
            defer { server.stop() }
            try await RawTCP.waitUntilListening(port: port)
            return try await body(port)
        }

        // MARK: Our server staples

        @Test("our server staples a good response that openssl s_client -status reads (EC and RSA, TLS 1.2 and 1.3)",
              arguments: [TestOCSP.Leaf.ec, .rsa], ["-tls1_2", "-tls1_3"])
        func serverStaples(leaf: TestOCSP.Leaf, versionFlag: String) async throws {
            try await withTimeout(seconds: 60) {
                let ocsp = try await TestOCSP.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: ocsp.certificate(leaf), privateKeyFile: ocsp.key(leaf))
                    .stapling(ocspResponseFile: ocsp.response(leaf == .ec ? .goodEC : .goodRSA), issuerCertificateFile: ocsp.caCertificate)
                #expect(identity.stapledOCSPResponse?.isEmpty == false)
                let listener = try await TLSListener.bind(port: 0, configuration: .makeServerConfiguration(identity: identity))
                let server = Task { await TestServers.pong(listener) }
                let output = try await ExternalTool.run("openssl", [
                    "s_client", "-connect", "127.0.0.1:\(listener.port)", "-servername", "localhost", versionFlag, "-status",
                    "-CAfile", ocsp.caCertificate, "-verify_return_error", "-ign_eof",
                ], input: "ping\n")
                #expect(output.status == 0, "\(output)")
                #expect(output.stdout.contains("OCSP Response Status: successful"), "\(output)")
                #expect(output.stdout.contains("Cert Status: good"), "\(output)")
                await listener.close()
                await server.value
            }
        }

        @Test("a client that does not ask gets no staple")
        func noStapleUnasked() async throws {
            try await withTimeout(seconds: 60) {
                let ocsp = try await TestOCSP.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: ocsp.certificate(.ec), privateKeyFile: ocsp.key(.ec))
                    .stapling(ocspResponseFile: ocsp.response(.goodEC), issuerCertificateFile: ocsp.caCertificate)
                let listener = try await TLSListener.bind(port: 0, configuration: .makeServerConfiguration(identity: identity))
                let server = Task { await TestServers.pong(listener) }
                let output = try await ExternalTool.run("openssl", [
                    "s_client", "-connect", "127.0.0.1:\(listener.port)", "-CAfile", ocsp.caCertificate, "-ign_eof",
                ], input: "ping\n")
                #expect(output.status == 0, "\(output)")
                #expect(!output.stdout.contains("OCSP Response Status"), "\(output)")
                await listener.close()
                await server.value
            }
        }

        @Test("a response from a delegated responder staples, and our client finds it good")
        func delegatedResponder() async throws {
            try await withTimeout(seconds: 60) {
                let ocsp = try await TestOCSP.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: ocsp.certificate(.ec), privateKeyFile: ocsp.key(.ec))
                    .stapling(ocspResponseFile: ocsp.response(.delegatedEC), issuerCertificateFile: ocsp.caCertificate)
                let listener = try await TLSListener.bind(port: 0, configuration: .makeServerConfiguration(identity: identity))
                let server = Task { await TestServers.pong(listener) }
                for version in Self.versions {
                    let configuration = try await Self.client(ocsp, revocation: .requireStapledOCSP, version: version)
                    let connection = try await TLSConnection.connect(host: "localhost", port: listener.port, configuration: configuration)
                    #expect(connection.info.stapledOCSPResponse == .good)
                    try await connection.write(Array("ping\n".utf8))
                    #expect(try await TestServers.read(connection, through: "\n").hasPrefix("pong: ping"))
                    await connection.close()
                }
                await listener.close()
                await server.value
            }
        }

        @Test("loading a response refuses an expired one, a revoked one, one for another certificate, and bytes that are no response")
        func loadRefusals() async throws {
            try await withTimeout(seconds: 60) {
                let ocsp = try await TestOCSP.shared()
                let ecLeaf = try await TLSIdentity.pem(certificateChainFile: ocsp.certificate(.ec), privateKeyFile: ocsp.key(.ec))
                let revokedLeaf = try await TLSIdentity.pem(certificateChainFile: ocsp.certificate(.revoked), privateKeyFile: ocsp.key(.revoked))
                let cases: [(TLSIdentity, TestOCSP.Response, String, String)] = [
                    (ecLeaf, .expiredEC, ocsp.caCertificate, "expired"),
                    (revokedLeaf, .revoked, ocsp.caCertificate, "revoked"),
                    (ecLeaf, .goodRSA, ocsp.caCertificate, "does not know this certificate"),
                ]
                for (identity, response, issuer, expected) in cases {
                    let error = await #expect(throws: TLSError.self) {
                        _ = try await identity.stapling(ocspResponseFile: ocsp.response(response), issuerCertificateFile: issuer)
                    }
                    #expect(error?.kind == .invalidIdentity)
                    #expect(error?.message.contains(expected) == true, "\(response): \(String(describing: error))")
                }
                let garbage = await #expect(throws: TLSError.self) {
                    _ = try await ecLeaf.stapling(ocspResponse: Array("not DER".utf8), issuerCertificate: nil)
                }
                #expect(garbage?.kind == .invalidIdentity)
            }
        }

        @Test("truncations and one-byte changes of a response are refused or accepted cleanly, never a crash")
        func mutatedResponses() async throws {
            try await withTimeout(seconds: 120) {
                let ocsp = try await TestOCSP.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: ocsp.certificate(.ec), privateKeyFile: ocsp.key(.ec))
                let good = Array(try Data(contentsOf: URL(fileURLWithPath: ocsp.response(.delegatedEC))))
                var accepted = 0
                // Every third length and every third byte: each part of the
                // structure is hit, at a third of the cost.
                var variants: [[UInt8]] = stride(from: 0, to: good.count, by: 3).map { Array(good.prefix($0)) }
                for index in stride(from: 0, to: good.count, by: 3) {
                    var changed = good
                    changed[index] ^= 0x41
                    variants.append(changed)
                }
                let caCertificate = try await TLSIdentity.pem(certificateChainFile: ocsp.caCertificate, privateKeyFile: ocsp.directory.file("ca.key")).certificateChain[0]
                for variant in variants {
                    do {
                        _ = try await identity.stapling(ocspResponse: variant, issuerCertificate: caCertificate)
                        accepted += 1
                    } catch let error as TLSError {
                        #expect(error.kind == .invalidIdentity)
                    }
                }
                // Only changes that leave the signed part and the signature
                // intact (in the unsigned certificate list, say) may pass.
                #expect(accepted < variants.count / 4, "\(accepted) of \(variants.count) variants accepted")
                _ = try await identity.stapling(ocspResponse: good, issuerCertificate: caCertificate)
            }
        }

        // MARK: Our client reads staples from openssl s_server

        @Test("our client reports and requires openssl s_server's staple: good, revoked, expired, missing", arguments: versions)
        func clientStapleStatuses(version: TLSVersion) async throws {
            try await withTimeout(seconds: 90) {
                let ocsp = try await TestOCSP.shared()
                let cases: [(TestOCSP.Leaf, TestOCSP.Response?, OCSPStatus?, String?)] = [
                    (.ec, .goodEC, .good, nil),
                    (.rsa, .goodRSA, .good, nil),
                    (.revoked, .revoked, .revoked, "SEC_ERROR_REVOKED_CERTIFICATE"),
                    (.ec, .expiredEC, .expired, "SEC_ERROR_OCSP_OLD_RESPONSE"),
                    (.ec, nil, nil, "SSL_ERROR_BAD_CERTIFICATE"),
                ]
                for (leaf, response, status, refusal) in cases {
                    try await Self.withOpenSSLServer(ocsp, leaf, stapling: response) { port in
                        let off = try await Self.client(ocsp, revocation: .off, version: version)
                        let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: off)
                        #expect(connection.info.stapledOCSPResponse == status, "\(leaf) \(String(describing: response))")
                        await connection.close()

                        let required = try await Self.client(ocsp, revocation: .requireStapledOCSP, version: version)
                        if let refusal {
                            let error = await #expect(throws: TLSError.self) {
                                _ = try await TLSConnection.connect(host: "localhost", port: port, configuration: required)
                            }
                            #expect(error?.nssName == refusal, "\(leaf) \(String(describing: response)): \(String(describing: error))")
                        } else {
                            let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: required)
                            #expect(connection.info.stapledOCSPResponse == .good)
                            await connection.close()
                        }
                    }
                }
            }
        }

        @Test("without a staple, RevocationPolicy.ocsp asks the certificate's responder (openssl ocsp): good, revoked, unreachable")
        func clientAsksResponder() async throws {
            try await withTimeout(seconds: 90) {
                let ocsp = try await TestOCSP.shared()
                let configuration = try await Self.client(ocsp, revocation: .ocsp, version: .tls13)
                try await ocsp.withResponder {
                    try await Self.withOpenSSLServer(ocsp, .ec, stapling: nil) { port in
                        let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: configuration)
                        #expect(connection.info.stapledOCSPResponse == nil)
                        await connection.close()
                    }
                    try await Self.withOpenSSLServer(ocsp, .revoked, stapling: nil) { port in
                        let error = await #expect(throws: TLSError.self) {
                            _ = try await TLSConnection.connect(host: "localhost", port: port, configuration: configuration)
                        }
                        #expect(error?.nssName == "SEC_ERROR_REVOKED_CERTIFICATE", "\(String(describing: error))")
                    }
                }
                // The responder is gone: no answer, no connection (hard fail).
                try await Self.withOpenSSLServer(ocsp, .ec, stapling: nil) { port in
                    let error = await #expect(throws: TLSError.self) {
                        _ = try await TLSConnection.connect(host: "localhost", port: port, configuration: configuration)
                    }
                    #expect(error?.nssName != nil, "\(String(describing: error))")
                }
                // A good staple answers without the responder.
                try await Self.withOpenSSLServer(ocsp, .ec, stapling: .goodEC) { port in
                    let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: configuration)
                    #expect(connection.info.stapledOCSPResponse == .good)
                    await connection.close()
                }
            }
        }

        @Test("a server with RevocationPolicy.crl refuses openssl s_client's revoked client certificate and accepts the other", arguments: ["-tls1_2", "-tls1_3"])
        func serverChecksClientCRL(versionFlag: String) async throws {
            try await withTimeout(seconds: 60) {
                let ocsp = try await TestOCSP.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: ocsp.certificate(.ec), privateKeyFile: ocsp.key(.ec))
                var configuration = TLSConfiguration.makeServerConfiguration(identity: identity)
                configuration.trust = try await .pem(file: ocsp.caCertificate)
                configuration.clientCertificatePolicy = .require
                configuration.revocation = try await .crl(files: [ocsp.crl])
                let listener = try await TLSListener.bind(port: 0, configuration: configuration)
                let server = Task { await TestServers.pong(listener) }
                for client in [TestOCSP.Leaf.client, .revokedClient] {
                    let output = try await ExternalTool.run("openssl", [
                        "s_client", "-connect", "127.0.0.1:\(listener.port)", "-servername", "localhost", versionFlag,
                        "-CAfile", ocsp.caCertificate, "-cert", ocsp.certificate(client), "-key", ocsp.key(client), "-ign_eof",
                    ], input: "ping\n")
                    if client == .client {
                        #expect(output.stdout.contains("pong: ping"), "\(output)")
                    } else {
                        #expect(!output.stdout.contains("pong: ping"), "\(output)")
                        #expect((output.stdout + output.stderr).contains("certificate revoked"), "\(output)")
                    }
                }
                await listener.close()
                await server.value
            }
        }

        @Test("RevocationPolicy.crl: a listed certificate fails, others pass, and an issuer without a list fails", arguments: versions)
        func clientChecksCRL(version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let ocsp = try await TestOCSP.shared()
                let configuration = try await Self.client(ocsp, revocation: try await .crl(files: [ocsp.crl]), version: version)
                for leaf in [TestOCSP.Leaf.ec, .rsa] {
                    try await Self.withOpenSSLServer(ocsp, leaf, stapling: nil) { port in
                        let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: configuration)
                        await connection.close()
                    }
                }
                try await Self.withOpenSSLServer(ocsp, .revoked, stapling: nil) { port in
                    let error = await #expect(throws: TLSError.self) {
                        _ = try await TLSConnection.connect(host: "localhost", port: port, configuration: configuration)
                    }
                    #expect(error?.nssName == "SEC_ERROR_REVOKED_CERTIFICATE", "\(String(describing: error))")
                }
                // The CA of TestPKI has no list here: its server's certificate fails.
                let pki = try await TestPKI.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
                let listener = try await TLSListener.bind(port: 0, configuration: .makeServerConfiguration(identity: identity))
                let server = Task { await TestServers.pong(listener) }
                var otherCA = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                otherCA.revocation = configuration.revocation
                let error = await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "localhost", port: listener.port, configuration: otherCA)
                }
                #expect(error?.nssName == "SEC_ERROR_CRL_NOT_FOUND", "\(String(describing: error))")
                await listener.close()
                await server.value
            }
        }
    }
}
