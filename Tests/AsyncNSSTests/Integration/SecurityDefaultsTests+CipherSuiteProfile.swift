import AsyncNSS
import Foundation
import Testing

extension Integration.SecurityDefaultsTests {
    // MARK: Mozilla's intermediate profile by default

    /// TLS 1.2 suites outside the profile, with RSA authentication so that
    /// the RSA test server could pick them: static RSA key exchange (no
    /// forward secrecy) and CBC.
    static let outsideProfile: [(name: String, suite: UInt16)] = [
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009C),
        ("TLS_RSA_WITH_AES_128_CBC_SHA", 0x002F),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xC013),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0xC027),
    ]
    static let outsideProfileNames = ["TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"]

    private static func rsaIdentity() async throws -> TLSIdentity {
        let pki = try await TestPKI.shared()
        return try await TLSIdentity.pem(certificateChainFile: pki.rsaServerCertificate, privateKeyFile: pki.rsaServerKey)
    }

    @Test("by default a server refuses static RSA and CBC suites; with nssDefaults or by name it accepts them",
          arguments: Self.outsideProfileNames)
    func serverProfile(name: String) async throws {
        try await withTimeout(seconds: 30) {
            let suite = try #require(Self.outsideProfile.first { $0.name == name }?.suite)
            let identity = try await Self.rsaIdentity()
            let strict = try await SecurityServer.start(identity: identity)
            #expect(try await FirstRecord.answer(to: RawClientHello(cipherSuites: [suite]), port: strict.port) == .alert(description: 40))
            #expect(await strict.logged("SSL_ERROR_NO_CYPHER_OVERLAP") != nil, "\(strict.log.all)")
            #expect(try await FirstRecord.answer(to: RawClientHello(cipherSuites: [suite, Self.strongSuite]), port: strict.port) == .serverHello)
            await strict.stop()

            for suites in [TLSCipherSuites.nssDefaults, try .named([name])] {
                let lenient = try await SecurityServer.start(identity: identity) { $0.cipherSuites = suites }
                #expect(try await FirstRecord.answer(to: RawClientHello(cipherSuites: [suite]), port: lenient.port) == .serverHello, "\(suites)")
                await lenient.stop()
            }
        }
    }

    @Test("openssl s_client offering only AES128-SHA is refused by default and served with nssDefaults",
          .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
    func opensslStaticRSA() async throws {
        try await withTimeout(seconds: 60) {
            let identity = try await Self.rsaIdentity()
            for suites in [TLSCipherSuites.mozillaIntermediate, .nssDefaults] {
                let server = try await SecurityServer.start(identity: identity) { $0.cipherSuites = suites }
                let output = try await ExternalTool.run("openssl", [
                    "s_client", "-connect", "127.0.0.1:\(server.port)", "-tls1_2", "-cipher", "AES128-SHA", "-brief",
                ], input: "ping\n")
                if suites == .mozillaIntermediate {
                    #expect(output.status != 0, "\(output)")
                    #expect(output.stderr.contains("alert handshake failure"), "\(output)")
                } else {
                    #expect(output.status == 0, "\(output)")
                    #expect(output.stderr.contains("Ciphersuite: AES128-SHA"), "\(output)")
                }
                await server.stop()
            }
        }
    }

    @Test("by default a client refuses a server that offers only ECDHE-RSA-AES128-SHA; naming the suite connects",
          .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
    func clientProfile() async throws {
        try await withTimeout(seconds: 60) {
            let pki = try await TestPKI.shared()
            let port = try RawTCP.freePort()
            let server = try ChildProcess("openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", pki.rsaServerCertificate, "-key", pki.rsaServerKey,
                                                      "-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA", "-www"])
            defer { server.stop() }
            try await RawTCP.waitUntilListening(port: port)
            var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
            let error = await #expect(throws: TLSError.self) {
                _ = try await TLSConnection.connect(host: "localhost", port: port, configuration: client)
            }
            // NSS names the refusal from its side or from the alert, depending on who notices first.
            #expect(["SSL_ERROR_NO_CYPHER_OVERLAP", "SSL_ERROR_HANDSHAKE_FAILURE_ALERT"].contains(error?.nssName ?? ""), "\(String(describing: error))")
            client.cipherSuites = try .named(["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"])
            let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: client)
            #expect(connection.info.cipherSuite == "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA")
            await connection.close()
        }
    }

    @Test("cipher suite names are checked: unknown, weak and empty lists are refused")
    func namesChecked() throws {
        #expect(try TLSCipherSuites.parse("nss-defaults") == .nssDefaults)
        #expect(try TLSCipherSuites.parse("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls_rsa_with_aes_128_gcm_sha256").description
                == "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,TLS_RSA_WITH_AES_128_GCM_SHA256")
        for bad in ["TLS_NOT_A_SUITE", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_NULL_SHA", ""] {
            #expect(throws: TLSError.self, "\(bad)") { _ = try TLSCipherSuites.parse(bad) }
        }
    }
}
