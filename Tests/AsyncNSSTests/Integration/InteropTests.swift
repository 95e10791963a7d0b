import AsyncNSS
import Foundation
import Testing

extension Integration {
    @Suite("Interop with OpenSSL, GnuTLS, curl and NSS's own tools")
    struct InteropTests {
        static let versions: [(TLSVersion, String)] = [(.tls12, "1.2"), (.tls13, "1.3")]

        private func pemServer() async throws -> (TLSListener, Task<Void, Never>, TestPKI) {
            let pki = try await TestPKI.shared()
            let identity = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
            let listener = try await TLSListener.bind(port: 0, configuration: .makeServerConfiguration(identity: identity))
            return (listener, Task { await TestServers.pong(listener) }, pki)
        }

        @Test("openssl s_client talks to our server", .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"), arguments: ["-tls1_2", "-tls1_3"])
        func opensslClient(versionFlag: String) async throws {
            try await withTimeout(seconds: 60) {
                let (listener, server, pki) = try await pemServer()
                let output = try await ExternalTool.run("openssl", [
                    "s_client", "-connect", "127.0.0.1:\(listener.port)", "-servername", "localhost", versionFlag,
                    "-CAfile", pki.caCertificate, "-verify_return_error", "-verify_hostname", "localhost", "-brief", "-ign_eof",
                ], input: "ping\n")
                let expected = versionFlag == "-tls1_2" ? "TLSv1.2" : "TLSv1.3"
                #expect(output.status == 0, "\(output)")
                #expect(output.stdout.contains("pong: ping \(expected)"), "\(output)")
                #expect(output.stderr.contains("Protocol version: \(expected)"), "\(output)")
                #expect(output.stderr.contains("Verification: OK"), "\(output)")
                await listener.close()
                await server.value
            }
        }

        @Test("curl fetches from our server", .enabled(if: ExternalTool.isInstalled("curl"), "needs curl: apt-get install curl"), arguments: [["--tlsv1.2", "--tls-max", "1.2"], ["--tlsv1.3"]])
        func curl(versionFlags: [String]) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: pki.rsaServerCertificate, privateKeyFile: pki.rsaServerKey)
                let listener = try await TLSListener.bind(port: 0, configuration: .makeServerConfiguration(identity: identity))
                let server = Task { await TestServers.http(listener) }
                let output = try await ExternalTool.run("curl", ["-sS", "--max-time", "20", "--cacert", pki.caCertificate] + versionFlags + ["https://localhost:\(listener.port)/"])
                let expected = versionFlags.contains("1.2") ? "TLSv1.2" : "TLSv1.3"
                #expect(output.status == 0, "\(output)")
                #expect(output.stdout.hasPrefix("hello over \(expected) with TLS_"), "\(output)")
                await listener.close()
                await server.value
            }
        }

        @Test("our client talks to openssl s_server", .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"), arguments: ["-tls1_2", "-tls1_3"])
        func opensslServer(versionFlag: String) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let port = try RawTCP.freePort()
                let server = try ChildProcess("openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", pki.serverCertificate, "-key", pki.serverKey, versionFlag, "-www"])
                defer { server.stop() }
                try await RawTCP.waitUntilListening(port: port)
                let configuration = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: configuration)
                let expected: TLSVersion = versionFlag == "-tls1_2" ? .tls12 : .tls13
                #expect(connection.info.protocolVersion == expected)
                #expect(connection.info.peerSubject == "CN=localhost")
                #expect(connection.info.peerCertificates.count >= 1)
                try await connection.write(Array("GET / HTTP/1.0\r\n\r\n".utf8))
                // s_server keeps the connection open after its page: read through the page.
                let text = try await TestServers.read(connection, through: "</HTML>")
                #expect(text.hasPrefix("HTTP/1.0 200 ok"), "\(text.prefix(200))")
                await connection.close()
            }
        }

        @Test("NSS tstclnt talks to our server", .enabled(if: ExternalTool.isInstalled("tstclnt", "certutil", "pk12util"), "needs tstclnt and certutil and pk12util: apt-get install libnss3-tools"), arguments: ["tls1.2:tls1.2", "tls1.3:tls1.3"])
        func tstclnt(range: String) async throws {
            try await withTimeout(seconds: 60) {
                let (listener, server, pki) = try await pemServer()
                // The request comes from a file (-A): on a pipe whose writer
                // has gone, tstclnt polls stdin's hang-up forever. With a file
                // it exits by itself once the server has closed.
                let directory = try TemporaryDirectory()
                let request = try directory.write("request", "ping\n")
                let output = try await ExternalTool.run("tstclnt", ["-4", "-h", "localhost", "-p", "\(listener.port)", "-d", pki.database, "-V", range, "-W", pki.databasePasswordFile, "-A", request], timeout: 30)
                #expect(output.exitedCleanly, "\(output)")
                #expect(output.elapsed < .seconds(10), "\(output)")
                let expected = range.hasPrefix("tls1.2") ? "TLSv1.2" : "TLSv1.3"
                #expect(output.stderr.contains("subject DN: CN=localhost"), "\(output)")
                #expect(output.stdout.contains("pong: ping \(expected)"), "\(output)")
                await listener.close()
                await server.value
            }
        }

        @Test("gnutls-cli talks to our server", .enabled(if: ExternalTool.isInstalled("gnutls-cli"), "needs gnutls-cli: apt-get install gnutls-bin"), arguments: ["NORMAL:-VERS-ALL:+VERS-TLS1.2", "NORMAL:-VERS-ALL:+VERS-TLS1.3"])
        func gnutlsClient(priority: String) async throws {
            try await withTimeout(seconds: 60) {
                let (listener, server, pki) = try await pemServer()
                let output = try await ExternalTool.run("gnutls-cli", ["--x509cafile", pki.caCertificate, "--priority", priority, "-p", "\(listener.port)", "localhost"], input: "ping\n", timeout: 20)
                let expected = priority.hasSuffix("1.2") ? "TLSv1.2" : "TLSv1.3"
                // The server answers and closes with close_notify: gnutls-cli
                // exits by itself, at once, and says the peer closed.
                #expect(output.exitedCleanly, "\(output)")
                #expect(output.elapsed < .seconds(10), "\(output)")
                #expect((output.stdout + output.stderr).contains("Peer has closed the GnuTLS connection"), "\(output)")
                #expect(output.stdout.contains("pong: ping \(expected)"), "\(output)")
                #expect(output.stdout.contains("Handshake was completed") || output.stderr.contains("Handshake was completed"), "\(output)")
                await listener.close()
                await server.value
            }
        }

        @Test("our client talks to NSS selfserv", .enabled(if: ExternalTool.isInstalled("selfserv", "certutil", "pk12util"), "needs selfserv and certutil and pk12util: apt-get install libnss3-tools"), arguments: ["tls1.2:tls1.2", "tls1.3:tls1.3"])
        func selfserv(range: String) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let port = try RawTCP.freePort()
                let server = try ChildProcess("selfserv", ["-d", pki.database, "-n", "server", "-p", "\(port)", "-V", range, "-f", pki.databasePasswordFile, "-D"])
                defer { server.stop() }
                try await RawTCP.waitUntilListening(port: port)
                let configuration = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: configuration)
                let expected: TLSVersion = range.hasPrefix("tls1.2") ? .tls12 : .tls13
                #expect(connection.info.protocolVersion == expected)
                try await connection.write(Array("GET /stop? HTTP/1.0\r\n\r\n".utf8))
                let (text, truncated) = try await TestServers.readToEnd(connection)
                #expect(text.hasPrefix("HTTP/1.0 200 OK"), "\(text.prefix(300))")
                #expect(!truncated, "selfserv closed without close_notify")
                await connection.close()
            }
        }
    }
}
