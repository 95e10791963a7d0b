import AsyncNSS
import Foundation
import Testing

extension Integration {
    /// SNI and resumption with openssl s_client as the client: a session made
    /// under one name does not let a handshake for another name skip its own
    /// certificate, and a reload changes what new sessions present.
    @Suite("SNI with resumption across names and reloads, against openssl s_client",
           .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
    struct ServerNameResumptionTests {
        /// RSA default identity; the EC one for `localhost`.
        private static func configuration(_ pki: TestPKI, version: TLSVersion, named: TLSIdentity) async throws -> TLSConfiguration {
            var configuration = TLSConfiguration.makeServerConfiguration(identity: try await TLSIdentity.pem(certificateChainFile: pki.rsaServerCertificate, privateKeyFile: pki.rsaServerKey))
            configuration.serverNameIdentities = ["localhost": named]
            configuration.minimumVersion = version
            configuration.maximumVersion = version
            return configuration
        }

        /// A listener with ``configuration(_:version:named:)`` that answers
        /// each line with a pong.
        private static func serve(_ pki: TestPKI, version: TLSVersion, named: TLSIdentity) async throws -> (TLSListener, Task<Void, Never>) {
            let listener = try await TLSListener.bind(port: 0, configuration: try await configuration(pki, version: version, named: named))
            return (listener, Task { await TestServers.pong(listener) })
        }

        /// One `s_client` run for `name`: whether it resumed, and the DER of
        /// the server certificate it printed (the session's, when resumed).
        private static func connect(port: Int, name: String, version: TLSVersion, pki: TestPKI, sessionIn: String? = nil, sessionOut: String? = nil) async throws -> (reused: Bool, certificate: [UInt8]?) {
            var arguments = ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", name, version == .tls12 ? "-tls1_2" : "-tls1_3",
                             "-CAfile", pki.caCertificate, "-verify_return_error", "-ign_eof"]
            if let sessionIn { arguments += ["-sess_in", sessionIn] }
            if let sessionOut { arguments += ["-sess_out", sessionOut] }
            let output = try await ExternalTool.run("openssl", arguments, input: "ping\n")
            #expect(output.exitedCleanly, "\(output)")
            #expect(output.stdout.contains("pong: ping"), "\(output)")
            return (output.stdout.contains("Reused, "), PEMBlocks.first(in: output.stdout))
        }

        @Test("a session made for one name is not resumed for another: the other name's certificate is presented", arguments: [TLSVersion.tls12, .tls13])
        func noResumptionAcrossNames(version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let named = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
                let (listener, server) = try await Self.serve(pki, version: version, named: named)
                let directory = try TemporaryDirectory()
                let session = directory.file("localhost.session")

                let first = try await Self.connect(port: listener.port, name: "localhost", version: version, pki: pki, sessionOut: session)
                #expect(!first.reused)
                // The same name resumes (the control)...
                let again = try await Self.connect(port: listener.port, name: "localhost", version: version, pki: pki, sessionIn: session)
                #expect(again.reused, "the session for localhost was not resumed for localhost")
                // ...another name does not, and gets the default identity.
                let across = try await Self.connect(port: listener.port, name: "other.test", version: version, pki: pki, sessionIn: session)
                #expect(!across.reused, "a session made for localhost was resumed for another name")
                #expect(across.certificate == (try PEMBlocks.all(inFile: pki.rsaServerCertificate).first), "the other name was not shown the default certificate")
                await listener.close()
                await server.value
            }
        }

        @Test("after a reload, new sessions for a name present the reloaded identity", arguments: [TLSVersion.tls12, .tls13])
        func reloadChangesTheNamedIdentity(version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let ec = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
                let (listener, server) = try await Self.serve(pki, version: version, named: ec)
                let first = try await Self.connect(port: listener.port, name: "localhost", version: version, pki: pki)
                #expect(first.certificate == (try PEMBlocks.all(inFile: pki.serverCertificate).first))

                // The name now has the chained leaf's identity.
                let chained = try await TLSIdentity.pem(certificateChainFile: pki.chainedLeafChain, privateKeyFile: pki.chainedLeafKey)
                try await listener.reload(try await Self.configuration(pki, version: version, named: chained))
                let fresh = try await Self.connect(port: listener.port, name: "localhost", version: version, pki: pki)
                #expect(!fresh.reused)
                #expect(fresh.certificate == (try PEMBlocks.all(inFile: pki.chainedLeafCertificate).first))
                await listener.close()
                await server.value
            }
        }
    }
}
