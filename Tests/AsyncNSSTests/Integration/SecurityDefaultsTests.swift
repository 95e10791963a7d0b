import AsyncNSS
import Foundation
import Testing

extension Integration {
    /// One test or more for each promise in SECURITY.md. Each fails if the
    /// default it pins changes. Real peers where one can still speak the
    /// weak protocol (openssl, gnutls-cli), hand-made ClientHellos where none
    /// can (export suites, a hello without renegotiation_info), each next to a
    /// control that shows the same peer succeeds when only the point tested
    /// differs.
    ///
    /// The tests for the other promises are in the `SecurityDefaultsTests+*.swift` files.
    @Suite("Security defaults (SECURITY.md)")
    struct SecurityDefaultsTests {
        // MARK: TLS 1.2 is the minimum

        @Test("both factories default to TLS 1.2 through 1.3, and nothing below 1.2 can be configured")
        func versionDefaults() async throws {
            try await withTimeout(seconds: 30) {
                let server = TLSConfiguration.makeServerConfiguration(identity: try await TestIdentities.localhost())
                let client = TLSConfiguration.makeClientConfiguration()
                for configuration in [server, client] {
                    #expect(configuration.minimumVersion == .tls12)
                    #expect(configuration.maximumVersion == .tls13)
                }
                var tls11 = server
                tls11.minimumVersion = TLSVersion(wireValue: 0x0302)
                let error = await #expect(throws: TLSError.self) {
                    _ = try await TLSListener.bind(port: 0, configuration: tls11)
                }
                #expect(error?.kind == .invalidConfiguration, "\(String(describing: error))")
            }
        }

        @Test("openssl s_client offering only TLS 1.1 or 1.0 is refused by a default server",
              .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"),
              arguments: ["-tls1_1", "-tls1"])
        func oldClientRefused(versionFlag: String) async throws {
            try await withTimeout(seconds: 60) {
                let server = try await SecurityServer.start()
                // SECLEVEL=0: OpenSSL 3 otherwise refuses to offer TLS 1.1 at all,
                // and the test would pass without our server saying anything.
                let output = try await ExternalTool.run("openssl", [
                    "s_client", "-connect", "127.0.0.1:\(server.port)", "-servername", "localhost", versionFlag,
                    "-cipher", "DEFAULT:@SECLEVEL=0", "-brief",
                ], input: "ping\n")
                #expect(output.status != 0, "\(output)")
                #expect(output.stderr.contains("alert protocol version"), "\(output)")
                #expect(await server.logged("SSL_ERROR_UNSUPPORTED_VERSION") != nil, "\(server.log.all)")
                try await server.expectStillServing()
                await server.stop()
            }
        }

        @Test("a hand-made TLS 1.1 ClientHello gets a protocol_version alert; the same hello as TLS 1.2 a ServerHello")
        func rawTLS11Refused() async throws {
            try await withTimeout(seconds: 30) {
                let server = try await SecurityServer.start()
                let suites: [UInt16] = [0xC02B, 0xC009, 0xC00A]      // ECDHE-ECDSA with AES
                #expect(try await FirstRecord.answer(to: RawClientHello(version: 0x0302, cipherSuites: suites), port: server.port) == .alert(description: 70))
                #expect(try await FirstRecord.answer(to: RawClientHello(version: 0x0303, cipherSuites: suites), port: server.port) == .serverHello)
                await server.stop()
            }
        }

        @Test("the default client refuses openssl s_server limited to TLS 1.1",
              .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
        func oldServerRefused() async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let port = try RawTCP.freePort()
                let server = try ChildProcess("openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", pki.serverCertificate, "-key", pki.serverKey,
                                                          "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-www"])
                defer { server.stop() }
                try await RawTCP.waitUntilListening(port: port)
                let client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                let error = await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "localhost", port: port, configuration: client)
                }
                #expect(error?.nssName?.contains("VERSION") == true, "\(String(describing: error))")
            }
        }
    }
}

/// An echo listener with the default server configuration and a log the
/// security tests read.
struct SecurityServer {
    let listener: TLSListener
    let log: CapturingLogHandler.Store
    let serving: Task<Void, Never>

    var port: Int { listener.port }

    /// Serves `identity` (the self-signed localhost one by default) with
    /// `makeServerConfiguration` and nothing changed but `configure`.
    /// `expected` says which errors of its connections the test provokes;
    /// any other fails the test.
    static func start(identity: TLSIdentity? = nil, expected: ExpectedErrors = .none, configure: (inout TLSConfiguration) -> Void = { _ in }) async throws -> SecurityServer {
        let identity = if let identity { identity } else { try await TestIdentities.localhost() }
        var configuration = TLSConfiguration.makeServerConfiguration(identity: identity)
        configure(&configuration)
        let (logger, store) = CapturingLogHandler.logger()
        let listener = try await TLSListener.bind(port: 0, configuration: configuration, logger: logger)
        return SecurityServer(listener: listener, log: store, serving: Task { await EchoServer.serveAll(listener, expected: expected.accepts) })
    }

    /// The first "handshake failed" line that names `nssName`.
    func logged(_ nssName: String) async -> String? {
        await log.waitForLine(containing: ["handshake failed", nssName])
    }

    /// A client with the default configuration (trusting only the test
    /// identity) still gets its bytes echoed.
    func expectStillServing() async throws {
        let client = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: try await TestIdentities.clientConfiguration())
        try await client.write(Array("still serving".utf8))
        var received: [UInt8] = []
        for try await chunk in client.inbound {
            received += chunk
            if received.count >= 13 { break }
        }
        #expect(String(decoding: received, as: UTF8.self) == "still serving")
        await client.close()
    }

    func stop() async {
        await listener.close()
        await serving.value
    }
}

/// The errors a test provokes on purpose in its servers' connections.
struct ExpectedErrors: Sendable {
    let accepts: @Sendable (any Error) -> Bool

    static let none = ExpectedErrors { _ in false }
}
