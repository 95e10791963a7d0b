import AsyncNSS
import Foundation
import Testing

extension Integration.SecurityDefaultsTests {
    // MARK: Safe renegotiation only; servers refuse client-initiated renegotiation

    static let gnutlsTLS12 = "NORMAL:-VERS-ALL:+VERS-TLS1.2"

    /// gnutls-cli ends a connection whose renegotiation was refused with an
    /// internal_error alert, which the echo server's read reports.
    static let gnutlsGaveUp = ExpectedErrors { ($0 as? TLSError)?.nssName == "SSL_ERROR_INTERNAL_ERROR_ALERT" }

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
            let server = try await SecurityServer.start(expected: Self.gnutlsGaveUp)
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

    @Test("gnutls-cli without safe renegotiation (RFC 5746) connects, but no renegotiation happens with it, from either side",
          .enabled(if: ExternalTool.isInstalled("gnutls-cli"), "needs gnutls-cli: apt-get install gnutls-bin"))
    func legacyClientConnectsButNeverRenegotiates() async throws {
        try await withTimeout(seconds: 60) {
            let legacyPriority = Self.gnutlsTLS12 + ":%DISABLE_SAFE_RENEGOTIATION"
            // The server tries to renegotiate once the client's line arrives,
            // then answers with what happened.
            var configuration = TLSConfiguration.makeServerConfiguration(identity: try await TestIdentities.localhost())
            configuration.renegotiation = .localAndPeer
            let listener = try await TLSListener.bind(port: 0, configuration: configuration)
            let server = Task { () -> TLSError? in
                for try await connection in listener {
                    _ = try await TestServers.read(connection, through: "\n")
                    do {
                        _ = try await connection.rehandshake()
                        try await connection.write(Array("renegotiated\n".utf8))
                        await connection.close()
                        return nil
                    } catch let error as TLSError {
                        try await connection.write(Array("refused \(error.nssName ?? "")\n".utf8))
                        await connection.close()
                        return error
                    }
                }
                return nil
            }
            let legacy = try await ExternalTool.run("gnutls-cli", ["--insecure", "-p", "\(listener.port)", "localhost", "--priority", legacyPriority], input: "ping\n", timeout: 20)
            #expect(legacy.stdout.contains("refused SSL_ERROR_RENEGOTIATION_NOT_ALLOWED"), "\(legacy)")
            let refusal = try await server.value
            #expect(refusal?.nssName == "SSL_ERROR_RENEGOTIATION_NOT_ALLOWED", "\(String(describing: refusal))")
            await listener.close()

            // A legacy client's own renegotiation is refused even by a server
            // that accepts its clients' renegotiations.
            let permissive = try await SecurityServer.start(expected: Self.gnutlsGaveUp) { $0.renegotiation = .localAndPeer }
            let arguments = ["--insecure", "--rehandshake", "-p", "\(permissive.port)", "localhost", "--priority", legacyPriority]
            let clientStarted = try await ExternalTool.run("gnutls-cli", arguments, input: "ping\n", timeout: 20)
            #expect(!(clientStarted.stdout + clientStarted.stderr).contains("ReHandshake was completed"), "\(clientStarted)")
            #expect((clientStarted.stdout + clientStarted.stderr).contains("ReHandshake has failed"), "\(clientStarted)")
            try await permissive.expectStillServing()
            await permissive.stop()
        }
    }

    @Test("a TLS 1.2 ClientHello without renegotiation_info gets a ServerHello, as one with it does")
    func rawHelloWithoutRenegotiationInfoAccepted() async throws {
        try await withTimeout(seconds: 30) {
            let server = try await SecurityServer.start()
            let suites: [UInt16] = [0xC02B, 0xC009]
            let legacy = try await FirstRecord.answer(to: RawClientHello(cipherSuites: suites, renegotiationInfo: false), port: server.port)
            #expect(legacy == .serverHello, "\(legacy)")
            let safe = try await FirstRecord.answer(to: RawClientHello(cipherSuites: suites, renegotiationInfo: true), port: server.port)
            #expect(safe == .serverHello, "\(safe)")
            await server.stop()
        }
    }

    @Test("a client refuses a server that does not signal RFC 5746",
          .enabled(if: ExternalTool.isInstalled("gnutls-serv"), "needs gnutls-serv: apt-get install gnutls-bin"))
    func clientRequiresSafeRenegotiation() async throws {
        try await withTimeout(seconds: 60) {
            let pki = try await TestPKI.shared()
            for priority in [Self.gnutlsTLS12 + ":%DISABLE_SAFE_RENEGOTIATION", Self.gnutlsTLS12] {
                let port = try RawTCP.freePort()
                let server = try ChildProcess("gnutls-serv", ["-p", "\(port)", "--x509certfile", pki.serverCertificate, "--x509keyfile", pki.serverKey,
                                                              "--priority", priority, "--echo"])
                defer { server.stop() }
                try await RawTCP.waitUntilListening(port: port)
                let client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                if priority.contains("DISABLE_SAFE") {
                    let error = await #expect(throws: TLSError.self) {
                        _ = try await TLSConnection.connect(host: "localhost", port: port, configuration: client)
                    }
                    #expect(error?.nssName == "SSL_ERROR_UNSAFE_NEGOTIATION", "\(String(describing: error))")
                } else {
                    let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: client)
                    #expect(connection.info.protocolVersion == .tls12)
                    await connection.close()
                }
            }
        }
    }
}
