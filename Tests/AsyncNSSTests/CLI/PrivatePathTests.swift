import AsyncNSS
import Testing

extension Integration {
    /// `nss-tls serve`'s `/private` (a client certificate asked for in the
    /// middle of the connection) and `/rekey`, against real clients.
    @Suite("nss-tls serve: /private and /rekey", .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
    struct PrivatePathTests {
        /// A client of the test, with its arguments for a server on `port`.
        enum Client: String, CustomTestStringConvertible {
            case opensslTLS12, opensslTLS13, gnutlsTLS12, connectTLS12, connectTLS13

            var testDescription: String { rawValue }

            func command(port: Int, pki: TestPKI, withCertificate: Bool) -> (executable: String, arguments: [String]) {
                let openssl = ExternalTool.path("openssl") ?? "openssl"
                let opensslIdentity = withCertificate ? ["-cert", pki.clientCertificate, "-key", pki.clientKey] : []
                let connectIdentity = withCertificate ? ["--cert", pki.clientCertificate, "--key", pki.clientKey] : []
                switch self {
                case .opensslTLS12:
                    return (openssl, ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-CAfile", pki.caCertificate, "-tls1_2", "-ign_eof"] + opensslIdentity)
                case .opensslTLS13:
                    return (openssl, ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-CAfile", pki.caCertificate, "-tls1_3", "-ign_eof"]
                        + (withCertificate ? ["-enable_pha"] : []) + opensslIdentity)
                case .gnutlsTLS12:
                    return (ExternalTool.path("gnutls-cli") ?? "gnutls-cli", ["--x509cafile", pki.caCertificate, "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.2", "-p", "\(port)", "localhost"]
                        + (withCertificate ? ["--x509certfile", pki.clientCertificate, "--x509keyfile", pki.clientKey] : []))
                case .connectTLS12, .connectTLS13:
                    return (ToolRun.binary, ["connect", "127.0.0.1:\(port)", "--server-name", "localhost", "--ca", pki.caCertificate, "--tls-max", self == .connectTLS12 ? "1.2" : "1.3"] + connectIdentity)
                }
            }
        }

        /// Runs a client with `request` on standard input, kept open until
        /// `marker` appears in its output: every client here half-closes on
        /// end of input, and TLS forbids a handshake after close_notify.
        static func exchange(_ command: (executable: String, arguments: [String]), request: String, until marker: String) async throws -> String {
            let child = try StreamingChild(executable: command.executable, command.arguments, stdin: .open(Array(request.utf8)))
            _ = await child.stdout.waitForLine(seconds: 20) { _ in child.stdout.text.contains(marker) }
            child.closeInput()
            if await child.exitStatus(within: 10) == nil { await child.kill() }
            _ = await child.stdout.waitUntilFinished(seconds: 5)
            return child.stdout.text + "\n--- stderr\n" + child.stderr.text
        }

        static func startServer(_ pki: TestPKI) async throws -> ServeProcess {
            try await ServeProcess.start(["--cert", pki.serverCertificate, "--key", pki.serverKey, "--client-ca", pki.caCertificate])
        }

        @Test("/private returns the subject of a certificate asked for after the handshake",
              arguments: [Client.opensslTLS12, .opensslTLS13, .connectTLS12, .connectTLS13])
        func privateWithCertificate(client: Client) async throws {
            try await Self.checkPrivateWithCertificate(client)
        }

        @Test("/private with gnutls-cli over TLS 1.2", .enabled(if: ExternalTool.isInstalled("gnutls-cli"), "needs gnutls-cli: apt-get install gnutls-bin"))
        func privateWithGnuTLS() async throws {
            try await Self.checkPrivateWithCertificate(.gnutlsTLS12)
        }

        static func checkPrivateWithCertificate(_ client: Client) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let server = try await Self.startServer(pki)
                let output = try await Self.exchange(client.command(port: server.port, pki: pki, withCertificate: true),
                                                     request: "GET /private HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                                                     until: "client-certificate: ")
                #expect(output.contains("HTTP/1.1 200 OK"), "\(output)")
                #expect(output.contains("subject: ") && output.contains("CN=AsyncNSS Test Client"), "\(output)")
                #expect(await server.process.stop() == 0, "\(server.process.transcript)")
            }
        }

        @Test("/private without a certificate answers 403 and the connection goes on",
              arguments: [Client.opensslTLS12, .opensslTLS13, .connectTLS12, .connectTLS13])
        func privateWithoutCertificate(client: Client) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let server = try await Self.startServer(pki)
                let output = try await Self.exchange(client.command(port: server.port, pki: pki, withCertificate: false),
                                                     request: "GET /private HTTP/1.1\r\nHost: localhost\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                                                     until: "client-certificate: none")
                #expect(output.contains("HTTP/1.1 403 Forbidden"), "\(output)")
                #expect(output.contains("a client certificate is needed"), "\(output)")
                // The second request was answered on the same connection.
                #expect(output.contains("HTTP/1.1 200 OK"), "\(output)")
                #expect(await server.process.stop() == 0, "\(server.process.transcript)")
            }
        }

        @Test("/rekey: openssl s_client -msg sees our KeyUpdate on TLS 1.3")
        func rekeyTLS13() async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let server = try await Self.startServer(pki)
                var command = Client.opensslTLS13.command(port: server.port, pki: pki, withCertificate: false)
                command.arguments.append("-msg")
                let output = try await Self.exchange(command, request: "GET /rekey HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", until: "client-certificate: ")
                #expect(output.contains("<<< TLS 1.3, Handshake [length 0005], KeyUpdate"), "\(output)")
                #expect(output.contains("event: keyUpdate #2"), "\(output)")
                #expect(await server.process.stop() == 0, "\(server.process.transcript)")
            }
        }

        @Test("/rekey renegotiates on TLS 1.2", arguments: [Client.opensslTLS12, .connectTLS12])
        func rekeyTLS12(client: Client) async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let server = try await Self.startServer(pki)
                let output = try await Self.exchange(client.command(port: server.port, pki: pki, withCertificate: false),
                                                     request: "GET /rekey HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                                                     until: "client-certificate: ")
                #expect(output.contains("event: renegotiation #2"), "\(output)")
                #expect(await server.process.stop() == 0, "\(server.process.transcript)")
            }
        }
    }
}

extension Integration.PrivatePathTests {
    @Test("serve --sni picks the identity by name and --alpn negotiates with openssl s_client")
    func serverNamesAndALPN() async throws {
        try await withTimeout(seconds: 60) {
            let pki = try await TestPKI.shared()
            let directory = try TemporaryDirectory()
            let altCertificate = directory.file("alt.pem")
            let altKey = directory.file("alt.key")
            let made = try await ExternalTool.run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                                                              "-keyout", altKey, "-out", altCertificate, "-subj", "/CN=alt.test", "-days", "2"])
            #expect(made.status == 0, "\(made)")
            let server = try await ServeProcess.start([
                "--cert", pki.serverCertificate, "--key", pki.serverKey,
                "--sni", "alt.test=\(altCertificate),\(altKey)",
                "--alpn", "h2,http/1.1",
            ])
            func handshake(_ arguments: [String]) async throws -> String {
                let output = try await ExternalTool.run("openssl", ["s_client", "-connect", "127.0.0.1:\(server.port)"] + arguments, input: "", timeout: 20)
                return output.stdout + output.stderr
            }
            let named = try await handshake(["-servername", "alt.test", "-alpn", "http/1.1"])
            #expect(named.contains("subject=CN = alt.test"), "the identity for alt.test: \(named)")
            #expect(named.contains("ALPN protocol: http/1.1"), "\(named)")
            let other = try await handshake(["-servername", "localhost", "-alpn", "h2,http/1.1"])
            #expect(other.contains("subject=CN = localhost"), "the default identity: \(other)")
            #expect(other.contains("ALPN protocol: h2"), "the server's first choice: \(other)")
            #expect(await server.process.stop() == 0, "\(server.process.transcript)")
        }
    }
}
