import AsyncNSS
import Foundation
import Testing

extension Integration.SecurityDefaultsTests {
    // MARK: Safe renegotiation only; servers refuse client-initiated renegotiation

    static let gnutlsTLS12 = "NORMAL:-VERS-ALL:+VERS-TLS1.2"

    @Test("both factories default to RenegotiationPolicy.automatic")
    func renegotiationDefault() async throws {
        try await withTimeout(seconds: 30) {
            let server = TLSConfiguration.makeServerConfiguration(identity: try await TestIdentities.localhost())
            #expect(server.renegotiation == .automatic)
            #expect(TLSConfiguration.makeClientConfiguration().renegotiation == .automatic)
        }
    }

    @Test("a default server refuses gnutls-cli's renegotiation and keeps the connection; with localAndPeer it renegotiates",
          .enabled(if: ExternalTool.isInstalled("gnutls-cli"), "needs gnutls-cli: apt-get install gnutls-bin"))
    func clientInitiatedRenegotiationRefused() async throws {
        try await withTimeout(seconds: 60) {
            let arguments = ["--insecure", "--rehandshake", "--priority", Self.gnutlsTLS12, "localhost"]
            let server = try await SecurityServer.start()
            let refused = try await ExternalTool.run("gnutls-cli", arguments + ["-p", "\(server.port)"], input: "ping\n", timeout: 20)
            #expect(!refused.stdout.contains("Rehandshake was performed"), "\(refused)")
            #expect((refused.stdout + refused.stderr).contains("ReHandshake has failed"), "\(refused)")
            try await server.expectStillServing()
            await server.stop()

            let permissive = try await SecurityServer.start { $0.renegotiation = .localAndPeer }
            let accepted = try await ExternalTool.run("gnutls-cli", arguments + ["-p", "\(permissive.port)"], input: "ping\n", timeout: 20)
            #expect((accepted.stdout + accepted.stderr).contains("ReHandshake was completed"), "\(accepted)")
            await permissive.stop()
        }
    }

    @Test("gnutls-cli without safe renegotiation (RFC 5746) is refused; the same client with it connects",
          .enabled(if: ExternalTool.isInstalled("gnutls-cli"), "needs gnutls-cli: apt-get install gnutls-bin"))
    func unsafeRenegotiationClientRefused() async throws {
        try await withTimeout(seconds: 60) {
            let server = try await SecurityServer.start()
            let arguments = ["--insecure", "-p", "\(server.port)", "localhost", "--priority"]
            let legacy = try await ExternalTool.run("gnutls-cli", arguments + [Self.gnutlsTLS12 + ":%DISABLE_SAFE_RENEGOTIATION"], input: "ping\n", timeout: 20)
            #expect(legacy.status != 0, "\(legacy)")
            #expect(!legacy.stdout.contains("ping"), "\(legacy)")
            #expect(await server.logged("SSL_ERROR_UNSAFE_NEGOTIATION") != nil, "\(server.log.all)")

            let safe = try await ExternalTool.run("gnutls-cli", arguments + [Self.gnutlsTLS12], input: "ping\n", timeout: 20)
            #expect(safe.stdout.contains("ping"), "\(safe)")
            await server.stop()
        }
    }

    @Test("a TLS 1.2 ClientHello without renegotiation_info gets handshake_failure; with it, a ServerHello")
    func rawHelloWithoutRenegotiationInfoRefused() async throws {
        try await withTimeout(seconds: 30) {
            let server = try await SecurityServer.start()
            let suites: [UInt16] = [0xC02B, 0xC009]
            let refused = try await FirstRecord.answer(to: RawClientHello(cipherSuites: suites, renegotiationInfo: false), port: server.port)
            #expect(refused == .alert(description: 40), "\(refused)")
            #expect(await server.logged("SSL_ERROR_UNSAFE_NEGOTIATION") != nil, "\(server.log.all)")
            let control = try await FirstRecord.answer(to: RawClientHello(cipherSuites: suites, renegotiationInfo: true), port: server.port)
            #expect(control == .serverHello, "\(control)")
            await server.stop()
        }
    }
}
