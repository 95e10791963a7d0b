import AsyncNSS
import Foundation
import Testing

extension Integration.SecurityDefaultsTests {
    // MARK: No RC4, 3DES, single DES, export or NULL suites

    static let weakFamilies = ["RC4", "3DES", "single DES", "export", "NULL"]

    /// Suites of each weak family, with RSA and ECDHE-RSA key exchange, so
    /// that an RSA server could pick one if it were enabled.
    static func weakSuites(_ family: String) -> [UInt16] {
        switch family {
        case "RC4": [0x0004, 0x0005, 0xC011]
        case "3DES": [0x000A, 0x0016, 0xC012]
        case "single DES": [0x0009, 0x0015]
        case "export": [0x0003, 0x0006, 0x0008, 0x0014, 0x0062, 0x0064]
        case "NULL": [0x0001, 0x0002, 0x003B, 0xC010]
        default: []
        }
    }

    /// ECDHE-RSA with AES-128-GCM: what the controls offer.
    static let strongSuite: UInt16 = 0xC02F

    private static func rsaServer() async throws -> SecurityServer {
        let pki = try await TestPKI.shared()
        let identity = try await TLSIdentity.pem(certificateChainFile: pki.rsaServerCertificate, privateKeyFile: pki.rsaServerKey)
        return try await SecurityServer.start(identity: identity)
    }

    @Test("a ClientHello offering only weak suites gets handshake_failure; with a strong suite, a ServerHello",
          arguments: Self.weakFamilies)
    func rawWeakSuitesRefused(family: String) async throws {
        try await withTimeout(seconds: 30) {
            let suites = Self.weakSuites(family)
            #expect(!suites.isEmpty)
            let server = try await Self.rsaServer()
            let refused = try await FirstRecord.answer(to: RawClientHello(cipherSuites: suites), port: server.port)
            #expect(refused == .alert(description: 40), "\(family): \(refused)")
            #expect(await server.logged("SSL_ERROR_NO_CYPHER_OVERLAP") != nil, "\(server.log.all)")
            let control = try await FirstRecord.answer(to: RawClientHello(cipherSuites: suites + [Self.strongSuite]), port: server.port)
            #expect(control == .serverHello, "\(family) + AES-GCM: \(control)")
            await server.stop()
        }
    }

    @Test("gnutls-cli offering only 3DES, RC4 or NULL is refused; offering AES-GCM the same way succeeds",
          .enabled(if: ExternalTool.isInstalled("gnutls-cli"), "needs gnutls-cli: apt-get install gnutls-bin"),
          arguments: ["3DES-CBC", "ARCFOUR-128", "NULL"])
    func gnutlsWeakSuitesRefused(cipher: String) async throws {
        try await withTimeout(seconds: 60) {
            let server = try await Self.rsaServer()
            func priority(_ cipher: String, mac: String) -> String {
                "NONE:+VERS-TLS1.2:+\(cipher):+\(mac):+COMP-NULL:+RSA:+ECDHE-RSA:+SIGN-ALL:+CURVE-ALL"
            }
            let arguments = ["--insecure", "-p", "\(server.port)", "localhost", "--priority"]
            let weak = try await ExternalTool.run("gnutls-cli", arguments + [priority(cipher, mac: "SHA1")], input: "ping\n", timeout: 20)
            #expect(weak.status != 0, "\(weak)")
            #expect(!weak.stdout.contains("ping"), "\(weak)")
            #expect(await server.logged("SSL_ERROR_NO_CYPHER_OVERLAP") != nil, "\(server.log.all)")

            let control = try await ExternalTool.run("gnutls-cli", arguments + [priority("AES-128-GCM", mac: "AEAD")], input: "ping\n", timeout: 20)
            #expect(control.stdout.contains("ping"), "\(control)")
            await server.stop()
        }
    }

    @Test("openssl s_client offering only NULL suites is refused",
          .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
    func opensslNullRefused() async throws {
        try await withTimeout(seconds: 60) {
            let server = try await Self.rsaServer()
            let output = try await ExternalTool.run("openssl", [
                "s_client", "-connect", "127.0.0.1:\(server.port)", "-servername", "localhost", "-tls1_2",
                "-cipher", "eNULL:@SECLEVEL=0", "-brief",
            ], input: "ping\n")
            #expect(output.status != 0, "\(output)")
            #expect(output.stderr.contains("alert handshake failure"), "\(output)")
            #expect(await server.logged("SSL_ERROR_NO_CYPHER_OVERLAP") != nil, "\(server.log.all)")
            await server.stop()
        }
    }

    @Test("the default client refuses openssl s_server that offers only NULL suites, and connects when it offers AES-GCM",
          .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"),
          arguments: ["eNULL:@SECLEVEL=0", "ECDHE-RSA-AES128-GCM-SHA256"])
    func nullServerRefused(cipher: String) async throws {
        try await withTimeout(seconds: 60) {
            let pki = try await TestPKI.shared()
            let port = try RawTCP.freePort()
            let server = try ChildProcess("openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", pki.rsaServerCertificate, "-key", pki.rsaServerKey,
                                                      "-tls1_2", "-cipher", cipher, "-www"])
            defer { server.stop() }
            try await RawTCP.waitUntilListening(port: port)
            let client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
            if cipher.contains("NULL") {
                let error = await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "localhost", port: port, configuration: client)
                }
                // NSS names the refusal from its side or from the alert, depending on who notices first.
                #expect(["SSL_ERROR_NO_CYPHER_OVERLAP", "SSL_ERROR_HANDSHAKE_FAILURE_ALERT"].contains(error?.nssName ?? ""), "\(String(describing: error))")
            } else {
                let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: client)
                #expect(connection.info.cipherSuite.contains("AES_128_GCM"), "\(connection.info.cipherSuite)")
                await connection.close()
            }
        }
    }
}
