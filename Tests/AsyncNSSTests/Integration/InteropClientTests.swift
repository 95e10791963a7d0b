import AsyncNSS
import Foundation
import Testing

extension Integration {
    /// Our client against OpenSSL's server, and our server over IPv6, for
    /// what was tested only ours against ours.
    @Suite("Interop: our client against openssl s_server; IPv6 with openssl s_client",
           .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
    struct InteropClientTests {
        /// Starts `openssl s_server -www` with the test PKI's server identity.
        private static func opensslServer(_ extra: [String]) async throws -> (ChildProcess, Int, TestPKI) {
            let pki = try await TestPKI.shared()
            let port = try RawTCP.freePort()
            let server = try ChildProcess("openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", pki.serverCertificate, "-key", pki.serverKey, "-www"] + extra)
            try await RawTCP.waitUntilListening(port: port)
            return (server, port, pki)
        }

        /// Connects, fetches s_server's page (which also takes in a TLS 1.3
        /// ticket), closes, and returns what was negotiated.
        private static func fetch(port: Int, _ configuration: TLSConfiguration) async throws -> TLSConnectionInfo {
            let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: configuration)
            try await connection.write(Array("GET / HTTP/1.0\r\n\r\n".utf8))
            let page = try await TestServers.read(connection, through: "</HTML>")
            #expect(page.hasPrefix("HTTP/1.0 200 ok"), "\(page.prefix(200))")
            let info = connection.info
            await connection.close()
            return info
        }

        @Test("our client resumes its session with openssl s_server (a TLS 1.2 session ID, a TLS 1.3 ticket)", arguments: [TLSVersion.tls12, .tls13])
        func clientResumption(version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let (server, port, pki) = try await Self.opensslServer([version == .tls12 ? "-tls1_2" : "-tls1_3"])
                defer { server.stop() }
                NSSRuntime.clearClientSessionCache()
                let client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                let first = try await Self.fetch(port: port, client)
                #expect(first.protocolVersion == version)
                #expect(!first.resumed)
                let second = try await Self.fetch(port: port, client)
                #expect(second.resumed, "the second connection made a full handshake")
                #expect(second.peerCertificates.first?.derBytes == first.peerCertificates.first?.derBytes)
                // Another configuration is another session-cache partition:
                // a client that trusts differently makes a full handshake.
                let other = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                #expect(try await !Self.fetch(port: port, other).resumed)
            }
        }

        @Test("our client negotiates ALPN with openssl s_server", arguments: [TLSVersion.tls12, .tls13])
        func clientALPN(version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let (server, port, pki) = try await Self.opensslServer([version == .tls12 ? "-tls1_2" : "-tls1_3", "-alpn", "h2,http/1.1"])
                defer { server.stop() }
                var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                client.applicationProtocols = ["http/1.1", "h2"]
                let info = try await Self.fetch(port: port, client)
                // The server's preference wins over the client's order in OpenSSL.
                #expect(info.applicationProtocol == "h2" || info.applicationProtocol == "http/1.1", "\(String(describing: info.applicationProtocol))")
                client.applicationProtocols = ["h2"]
                #expect(try await Self.fetch(port: port, client).applicationProtocol == "h2")
                // No overlap: OpenSSL refuses with no_application_protocol.
                client.applicationProtocols = ["spdy/3"]
                let error = await #expect(throws: TLSError.self) { _ = try await Self.fetch(port: port, client) }
                #expect(error?.nssName == "SSL_ERROR_NEXT_PROTOCOL_NO_PROTOCOL", "\(String(describing: error))")
            }
        }

        @Test("our client sends its request, half-closes, and still reads openssl s_server's whole answer", arguments: [TLSVersion.tls12, .tls13])
        func clientHalfClose(version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let (server, port, pki) = try await Self.opensslServer([version == .tls12 ? "-tls1_2" : "-tls1_3"])
                defer { server.stop() }
                let client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: client)
                try await connection.write(Array("GET / HTTP/1.0\r\n\r\n".utf8))
                try await connection.shutdownOutput()
                await #expect(throws: TLSError.self, "no write after the half-close") { try await connection.write([1]) }
                let page = try await TestServers.read(connection, through: "</HTML>")
                #expect(page.hasPrefix("HTTP/1.0 200 ok"), "\(page.prefix(200))")
                #expect(page.contains("</HTML>"))
                await connection.close()
            }
        }

        @Test("openssl s_client talks to our server over IPv6", arguments: ["-tls1_2", "-tls1_3"])
        func ipv6(versionFlag: String) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
                let listener = try await TLSListener.bind(host: "::1", port: 0, configuration: .makeServerConfiguration(identity: identity))
                let server = Task { await TestServers.pong(listener) }
                let output = try await ExternalTool.run("openssl", [
                    "s_client", "-connect", "[::1]:\(listener.port)", "-servername", "localhost", versionFlag,
                    "-CAfile", pki.caCertificate, "-verify_return_error", "-verify_ip", "::1", "-brief", "-ign_eof",
                ], input: "ping\n")
                #expect(output.exitedCleanly, "\(output)")
                #expect(output.stderr.contains("Verification: OK"), "\(output)")
                #expect(output.stdout.contains("pong: ping TLSv1.\(versionFlag == "-tls1_2" ? "2" : "3")"), "\(output)")
                await listener.close()
                await server.value
            }
        }
    }
}
