import AsyncNSS
import Foundation
import Testing

extension Integration.SecurityDefaultsTests {
    // MARK: Certificate and host-name verification are on

    /// Runs `openssl s_server` with `certificate` and `key` until the body ends.
    private static func withOpenSSLServer<T: Sendable>(
        certificate: String, key: String,
        _ body: @escaping @Sendable (Int) async throws -> T
    ) async throws -> T {
        let port = try RawTCP.freePort()
        let server = try ChildProcess("openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", certificate, "-key", key, "-www"])
        defer { server.stop() }
        try await RawTCP.waitUntilListening(port: port)
        return try await body(port)
    }

    @Test("the default client configuration verifies the peer")
    func verificationDefault() async throws {
        try await withTimeout(seconds: 30) {
            #expect(TLSConfiguration.makeClientConfiguration().trust.verifiesPeer)
            #expect(TLSConfiguration.makeClientConfiguration().serverName == nil)
        }
    }

    @Test("the default client refuses openssl s_server's self-signed certificate, and accepts it once pinned",
          .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
    func selfSignedPeerRefused() async throws {
        try await withTimeout(seconds: 60) {
            // Made just now, so no database or module this process opened trusts it.
            let dir = try TemporaryDirectory()
            try await SelfSignedFiles.make(certificate: dir.file("cert.pem"), key: dir.file("key.pem"), subject: "/CN=localhost", altName: "DNS:localhost")
            try await Self.withOpenSSLServer(certificate: dir.file("cert.pem"), key: dir.file("key.pem")) { port in
                let error = await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "localhost", port: port, configuration: .makeClientConfiguration())
                }
                #expect(["SEC_ERROR_UNKNOWN_ISSUER", "SEC_ERROR_CA_CERT_INVALID", "SEC_ERROR_UNTRUSTED_ISSUER"].contains(error?.nssName ?? ""),
                        "\(String(describing: error))")

                let pinned = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: dir.file("cert.pem")))
                let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: pinned)
                await connection.close()
            }
        }
    }

    @Test("a client trusting the right CA still refuses a name the certificate does not carry",
          .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
    func wrongHostNameRefused() async throws {
        try await withTimeout(seconds: 60) {
            let pki = try await TestPKI.shared()
            let trust = try await TLSTrust.pem(file: pki.caCertificate)
            try await Self.withOpenSSLServer(certificate: pki.serverCertificate, key: pki.serverKey) { port in
                var wrong = TLSConfiguration.makeClientConfiguration(trust: trust)
                wrong.serverName = "wrong.example"
                let error = await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: wrong)
                }
                #expect(error?.nssName == "SSL_ERROR_BAD_CERT_DOMAIN", "\(String(describing: error))")

                let right = try await TLSConnection.connect(host: "localhost", port: port, configuration: .makeClientConfiguration(trust: trust))
                #expect(right.info.peerSubject?.isEmpty == false)
                await right.close()
            }
        }
    }
}
