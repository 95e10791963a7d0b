import AsyncNSS
import Foundation
import Synchronization
import Testing

extension Integration {
    /// Identities beyond one self-signed leaf, against OpenSSL in both roles:
    /// a leaf with an intermediate, and client certificates with EC and RSA
    /// keys. Each checks the DER of what was presented, not only a subject.
    @Suite("Interop: certificate chains and client certificates against openssl",
           .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
    struct InteropIdentityTests {
        static let versions: [TLSVersion] = [.tls12, .tls13]

        /// A client certificate and its key, by key type.
        enum ClientKey: String, CaseIterable, Sendable {
            case ec, rsa
            func files(_ pki: TestPKI) -> (certificate: String, key: String) {
                switch self {
                case .ec: (pki.clientCertificate, pki.clientKey)
                case .rsa: (pki.rsaClientCertificate, pki.rsaClientKey)
                }
            }
        }

        /// Connects and fetches s_server's page; returns the error that ended
        /// it, or nil. In TLS 1.3 a client's handshake ends before the server
        /// reads its Certificate, so a refusal can come with the first read.
        static func fetchError(port: Int, _ configuration: TLSConfiguration) async -> (any Error)? {
            let connection: TLSConnection
            do {
                connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: configuration)
            } catch {
                return error
            }
            var failure: (any Error)?
            do {
                try await connection.write(Array("GET / HTTP/1.0\r\n\r\n".utf8))
                _ = try await TestServers.readToEnd(connection)
            } catch {
                failure = error
            }
            await connection.close()
            return failure
        }

        /// A server with the PKI's EC identity that verifies client
        /// certificates against the PKI's CA.
        static func serverVerifyingClients(_ pki: TestPKI, policy: ClientCertificatePolicy) async throws -> TLSConfiguration {
            var configuration = TLSConfiguration.makeServerConfiguration(identity: try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey))
            configuration.trust = try await .pem(file: pki.caCertificate)
            configuration.clientCertificatePolicy = policy
            return configuration
        }

        static func versionFlag(_ version: TLSVersion) -> String { version == .tls12 ? "-tls1_2" : "-tls1_3" }

        @Test("openssl s_client -verify_return_error accepts our leaf plus intermediate, trusting only the root", arguments: versions)
        func chainToOpenSSLClient(version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                if ExternalTool.isInstalled("certutil", "pk12util") {
                    // With the database open, NSS knows the root: left to
                    // build the chain itself, NSS would send the root as well.
                    _ = try await TLSIdentity.database(pki.database, nickname: "server", password: TestPKI.databasePassword)
                }
                let identity = try await TLSIdentity.pem(certificateChainFile: pki.chainedLeafChain, privateKeyFile: pki.chainedLeafKey)
                let listener = try await TLSListener.bind(port: 0, configuration: .makeServerConfiguration(identity: identity))
                let server = Task { await TestServers.pong(listener) }
                let output = try await ExternalTool.run("openssl", [
                    "s_client", "-connect", "127.0.0.1:\(listener.port)", "-servername", "localhost", Self.versionFlag(version),
                    "-CAfile", pki.caCertificate, "-verify_return_error", "-verify_hostname", "localhost", "-showcerts", "-ign_eof",
                ], input: "ping\n")
                #expect(output.exitedCleanly, "\(output)")
                #expect(output.elapsed < .seconds(15), "\(output)")
                #expect(output.stdout.contains("Verify return code: 0 (ok)"), "\(output)")
                #expect(output.stdout.contains("pong: ping \(version)"), "\(output)")
                // What went on the wire is the leaf, then the intermediate.
                #expect(try PEMBlocks.all(in: output.stdout) == PEMBlocks.all(inFile: pki.chainedLeafChain))
                await listener.close()
                await server.value
            }
        }

        @Test("our client verifies openssl s_server's leaf plus intermediate, trusting only the root", arguments: versions)
        func chainFromOpenSSLServer(version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let port = try RawTCP.freePort()
                let server = try ChildProcess("openssl", [
                    "s_server", "-accept", "127.0.0.1:\(port)", "-cert", pki.chainedLeafCertificate, "-key", pki.chainedLeafKey,
                    "-cert_chain", pki.intermediateCertificate, Self.versionFlag(version), "-www",
                ])
                defer { server.stop() }
                try await RawTCP.waitUntilListening(port: port)
                let client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: client)
                #expect(connection.info.protocolVersion == version)
                let presented = connection.info.peerCertificates.map(\.derBytes)
                #expect(Array(presented.prefix(2)) == (try PEMBlocks.all(inFile: pki.chainedLeafChain)), "\(connection.info.peerCertificates)")
                try await connection.write(Array("GET / HTTP/1.0\r\n\r\n".utf8))
                let page = try await TestServers.read(connection, through: "</HTML>")
                #expect(page.hasPrefix("HTTP/1.0 200 ok"), "\(page.prefix(200))")
                await connection.close()

                // The chain must lead to what the client trusts: a client that
                // trusts only another certificate refuses it.
                let stranger = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.rsaServerCertificate))
                let error = await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "localhost", port: port, configuration: stranger)
                }
                // NSS knows the root from the first connection, where it was
                // trusted; for this configuration it is not.
                #expect(error?.nssName == "SEC_ERROR_UNTRUSTED_ISSUER", "\(String(describing: error))")
            }
        }

        @Test("our server requires and gets openssl s_client's EC and RSA client certificates",
              arguments: ClientKey.allCases, versions)
        func clientCertificateToOurServer(key: ClientKey, version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let configuration = try await Self.serverVerifyingClients(pki, policy: .require)
                let listener = try await TLSListener.bind(port: 0, configuration: configuration)
                let seen = Mutex<[[UInt8]]>([])
                let server = Task {
                    await TestServers.respond(listener, until: "\n") { _, info in
                        seen.withLock { $0.append(info.peerCertificates.first?.derBytes ?? []) }
                        return "pong \(info.protocolVersion)\n"
                    }
                }
                let (certificate, keyFile) = key.files(pki)
                let output = try await ExternalTool.run("openssl", [
                    "s_client", "-connect", "127.0.0.1:\(listener.port)", "-servername", "localhost", Self.versionFlag(version),
                    "-CAfile", pki.caCertificate, "-verify_return_error", "-cert", certificate, "-key", keyFile, "-brief", "-ign_eof",
                ], input: "ping\n")
                #expect(output.exitedCleanly, "\(output)")
                #expect(output.stdout.contains("pong \(version)"), "\(output)")
                #expect(seen.withLock { $0 } == (try PEMBlocks.all(inFile: certificate)))
                await listener.close()
                await server.value
            }
        }

        @Test("our client presents EC and RSA certificates to openssl s_server -Verify -verify_return_error",
              arguments: ClientKey.allCases, versions)
        func clientCertificateToOpenSSLServer(key: ClientKey, version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let port = try RawTCP.freePort()
                let server = try ChildProcess("openssl", [
                    "s_server", "-accept", "127.0.0.1:\(port)", "-cert", pki.serverCertificate, "-key", pki.serverKey,
                    "-Verify", "2", "-verify_return_error", "-CAfile", pki.caCertificate, Self.versionFlag(version), "-www",
                ])
                defer { server.stop() }
                try await RawTCP.waitUntilListening(port: port)
                let (certificate, keyFile) = key.files(pki)
                var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                client.identity = try await TLSIdentity.pem(certificateChainFile: certificate, privateKeyFile: keyFile)
                let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: client)
                #expect(connection.info.protocolVersion == version)
                try await connection.write(Array("GET / HTTP/1.0\r\n\r\n".utf8))
                let page = try await TestServers.read(connection, through: "</HTML>")
                await connection.close()
                // s_server's page shows the client certificate it verified.
                #expect(page.contains("Client certificate"), "\(page.prefix(400))")
                #expect(try PEMBlocks.all(in: page) == PEMBlocks.all(inFile: certificate), "\(page)")

                // Without a certificate, the same server refuses the client.
                NSSRuntime.clearClientSessionCache()
                let anonymous = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                let refusal = await Self.fetchError(port: port, anonymous)
                #expect(refusal is TLSError, "\(String(describing: refusal))")
            }
        }

        @Test("requestClientCertificate() mid-connection gets openssl s_client's EC and RSA certificates (TLS 1.2 renegotiation, TLS 1.3 post-handshake auth)",
              arguments: ClientKey.allCases, versions)
        func requestFromOpenSSLClient(key: ClientKey, version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                var configuration = try await Self.serverVerifyingClients(pki, policy: .none)
                configuration.minimumVersion = version
                configuration.maximumVersion = version
                let listener = try await TLSListener.bind(port: 0, configuration: configuration)
                let server = Task { () -> (before: Int, chain: [TLSCertificate])? in
                    for try await connection in listener {
                        let before = connection.info.peerCertificates.count
                        #expect(try await TestServers.read(connection, through: "\n") == "ping\n")
                        let chain = try await connection.requestClientCertificate()
                        try await connection.write(Array("got \(chain.count) certificate(s)\n".utf8))
                        await connection.close()
                        return (before, chain)
                    }
                    return nil
                }
                let (certificate, keyFile) = key.files(pki)
                let output = try await ExternalTool.run("openssl", [
                    "s_client", "-connect", "127.0.0.1:\(listener.port)", "-servername", "localhost", Self.versionFlag(version),
                    "-CAfile", pki.caCertificate, "-verify_return_error", "-cert", certificate, "-key", keyFile, "-ign_eof",
                ] + (version == .tls13 ? ["-enable_pha"] : []), input: "ping\n")
                #expect(output.exitedCleanly, "\(output)")
                // The verified chain: the client's certificate, then the CA.
                #expect(output.stdout.contains("got 2 certificate(s)"), "\(output)")
                let result = try #require(try await server.value)
                #expect(result.before == 0, "no certificate before the request")
                #expect(result.chain.map(\.derBytes) == (try PEMBlocks.all(inFile: certificate) + PEMBlocks.all(inFile: pki.caCertificate)))
                await listener.close()
            }
        }
    }
}
