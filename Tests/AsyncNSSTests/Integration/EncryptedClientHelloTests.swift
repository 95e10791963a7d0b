import AsyncNSS
@testable import AsyncNSS
import Foundation
import Testing

extension Integration {
    /// Encrypted Client Hello. Debian 12's OpenSSL (3.0) and GnuTLS (3.7.9)
    /// have no ECH, so the real peers are NSS's own tstclnt and selfserv.
    @Suite("Encrypted Client Hello: our client and server, tstclnt -N and selfserv -X")
    struct EncryptedClientHelloTests {
        static let publicName = "public.example"
        static let secretName = "secret.example"

        /// A server for both names, and a client that trusts its certificate.
        private static func pair() async throws -> (identity: TLSIdentity, client: TLSConfiguration) {
            let identity = try await TLSIdentity.selfSigned(names: [publicName, secretName])
            var client = TLSConfiguration.makeClientConfiguration(trust: .certificates(identity.certificateChain))
            client.serverName = secretName
            return (identity, client)
        }

        /// Answers the first connection's line with `reply`, and returns what
        /// its handshake negotiated (nil if the listener closed first).
        static func answerOnce(_ listener: TLSListener, with reply: String) -> Task<TLSConnectionInfo?, any Error> {
            Task {
                for try await connection in listener {
                    let info = connection.info
                    _ = try await TestServers.read(connection, through: "\n")
                    try await connection.write(Array(reply.utf8))
                    await connection.close()
                    return info
                }
                return nil
            }
        }

        /// The extension types of the ClientHello in `bytes` (whole records).
        static func extensionTypes(_ bytes: [UInt8]) -> [UInt16] {
            var index = 5 + 4 + 2 + 32
            func u16(_ at: Int) -> Int { at + 1 < bytes.count ? Int(bytes[at]) << 8 | Int(bytes[at + 1]) : 0 }
            guard index < bytes.count else { return [] }
            index += 1 + Int(bytes[index])
            index += 2 + u16(index)
            guard index < bytes.count else { return [] }
            index += 1 + Int(bytes[index])
            let end = index + 2 + u16(index)
            index += 2
            var types: [UInt16] = []
            while index + 4 <= min(end, bytes.count) {
                types.append(UInt16(u16(index)))
                index += 4 + u16(index + 2)
            }
            return types
        }

        @Test("accepted: the server sees the secret name, both sides report ECH, TLS 1.3")
        func accepted() async throws {
            try await withTimeout(seconds: 60) {
                let (identity, client) = try await Self.pair()
                let keys = try await EncryptedClientHelloKeys.generate(publicName: Self.publicName)
                #expect(keys.publicName == Self.publicName)
                var server = TLSConfiguration.makeServerConfiguration(identity: identity)
                server.encryptedClientHelloKeys = keys
                let listener = try await TLSListener.bind(port: 0, configuration: server)
                let accepted = Self.answerOnce(listener, with: "ok\n")
                var configuration = client
                configuration.encryptedClientHelloConfigList = keys.configList
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: configuration)
                #expect(connection.info.encryptedClientHelloAccepted)
                #expect(connection.info.protocolVersion == .tls13)
                try await connection.write(Array("hello\n".utf8))
                #expect(try await TestServers.read(connection, through: "\n") == "ok\n")
                await connection.close()
                let serverInfo = try await accepted.value
                #expect(serverInfo?.encryptedClientHelloAccepted == true)
                #expect(serverInfo?.serverName == Self.secretName)
                await listener.close()
            }
        }

        @Test("a server with an identity per name presents the secret name's, which it learns only by decrypting")
        func identityPerInnerName() async throws {
            try await withTimeout(seconds: 60) {
                let publicIdentity = try await TLSIdentity.selfSigned(names: [Self.publicName])
                let secretIdentity = try await TLSIdentity.selfSigned(names: [Self.secretName])
                let keys = try await EncryptedClientHelloKeys.generate(publicName: Self.publicName)
                var server = TLSConfiguration.makeServerConfiguration(identity: publicIdentity)
                server.serverNameIdentities = [Self.publicName: publicIdentity, Self.secretName: secretIdentity]
                server.encryptedClientHelloKeys = keys
                let listener = try await TLSListener.bind(port: 0, configuration: server)
                let serving = Task { await TestServers.pong(listener) }
                var client = TLSConfiguration.makeClientConfiguration(trust: .certificates(secretIdentity.certificateChain))
                client.serverName = Self.secretName
                client.encryptedClientHelloConfigList = keys.configList
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                #expect(connection.info.encryptedClientHelloAccepted)
                #expect(connection.info.peerCertificates.first?.derBytes == secretIdentity.certificateChain.first?.derBytes)
                try await connection.write(Array("ping\n".utf8))
                #expect(try await TestServers.read(connection, through: "\n").hasPrefix("pong: ping"))
                await connection.close()
                await listener.close()
                await serving.value
            }
        }

        @Test("on the wire, the ClientHello names only the public name and carries the ECH extension")
        func outerNameOnTheWire() async throws {
            try await withTimeout(seconds: 60) {
                let (_, client) = try await Self.pair()
                let keys = try await EncryptedClientHelloKeys.generate(publicName: Self.publicName)
                let listener = try await TCPListener.bind(host: "127.0.0.1", port: 0)
                let captured = Task { () -> [UInt8] in
                    let connection = try await listener.accept()
                    var bytes: [UInt8] = []
                    while case .needMore = ClientHelloServerName.parse(bytes), let chunk = try await connection.receive() { bytes += chunk }
                    await connection.close()
                    return bytes
                }
                var configuration = client
                configuration.encryptedClientHelloConfigList = keys.configList
                configuration.handshakeTimeout = .seconds(5)
                _ = try? await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: configuration)
                let hello = try await captured.value
                #expect(ClientHelloServerName.parse(hello) == .encrypted(outerServerName: Self.publicName))
                #expect(Self.extensionTypes(hello).contains(0xfe0d), "\(Self.extensionTypes(hello))")
                #expect(!String(decoding: hello, as: UTF8.self).contains(Self.secretName))
                await listener.close()
            }
        }

        @Test("a client with another key's configuration gets the server's in retry and connects on the second try")
        func retryConfigs() async throws {
            try await withTimeout(seconds: 60) {
                let (identity, client) = try await Self.pair()
                let current = try await EncryptedClientHelloKeys.generate(publicName: Self.publicName)
                let outdated = try await EncryptedClientHelloKeys.generate(publicName: Self.publicName)
                var server = TLSConfiguration.makeServerConfiguration(identity: identity)
                server.encryptedClientHelloKeys = current
                let listener = try await TLSListener.bind(port: 0, configuration: server)
                // The first try's handshake completes on the server, which then
                // reads the client's ech_required alert.
                let serving = Task {
                    await TestServers.respond(listener, until: "\n", expected: { ($0 as? TLSError)?.nssName == "SSL_ERROR_ECH_REQUIRED_ALERT" }) { request, _ in
                        "pong: \(request)"
                    }
                }
                var configuration = client
                configuration.encryptedClientHelloConfigList = outdated.configList
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: configuration)
                #expect(connection.info.encryptedClientHelloAccepted)
                try await connection.write(Array("ping\n".utf8))
                #expect(try await TestServers.read(connection, through: "\n").hasPrefix("pong: ping"))
                await connection.close()
                await listener.close()
                await serving.value
            }
        }

        @Test("a server without ECH, or one that speaks only TLS 1.2, fails the client: the name is never sent in the clear by surprise",
              arguments: [TLSVersion.tls13, .tls12])
        func serverWithoutECH(version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let (identity, client) = try await Self.pair()
                var server = TLSConfiguration.makeServerConfiguration(identity: identity)
                server.maximumVersion = version
                let listener = try await TLSListener.bind(port: 0, configuration: server)
                let serving = Task { for try await connection in listener { await connection.close() } }
                let keys = try await EncryptedClientHelloKeys.generate(publicName: Self.publicName)
                var configuration = client
                configuration.encryptedClientHelloConfigList = keys.configList
                let error = await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: configuration)
                }
                #expect(error?.nssName == "SSL_ERROR_ECH_RETRY_WITHOUT_ECH", "\(String(describing: error))")
                await listener.close()
                _ = await serving.result
            }
        }

        @Test("NSS's tstclnt -N hides the name from our server's public name, and our server decrypts it",
              .enabled(if: ExternalTool.isInstalled("tstclnt", "certutil"), "needs tstclnt: apt-get install libnss3-tools"))
        func tstclntClient() async throws {
            try await withTimeout(seconds: 60) {
                let (identity, _) = try await Self.pair()
                let keys = try await EncryptedClientHelloKeys.generate(publicName: Self.publicName)
                var server = TLSConfiguration.makeServerConfiguration(identity: identity)
                server.encryptedClientHelloKeys = keys
                let listener = try await TLSListener.bind(port: 0, configuration: server)
                let accepted = Self.answerOnce(listener, with: "ech ok\n")
                // tstclnt needs a database, even an empty one; -o accepts the certificate.
                let directory = try TemporaryDirectory()
                let database = "sql:" + directory.file("db")
                try FileManager.default.createDirectory(atPath: directory.file("db"), withIntermediateDirectories: true)
                _ = try await ExternalTool.run("certutil", ["-N", "-d", database, "--empty-password"])
                // The request comes from a file (-A): tstclnt polls a closed pipe forever.
                let request = try directory.write("request", "hello\n")
                let output = try await ExternalTool.run("tstclnt", [
                    "-4", "-d", database, "-h", "127.0.0.1", "-p", "\(listener.port)", "-a", Self.secretName, "-N", keys.configListBase64,
                    "-V", "tls1.3:tls1.3", "-o", "-A", request,
                ])
                #expect(output.stdout.contains("ech ok"), "\(output)")
                #expect(output.status == 0, "\(output)")
                // Ends the server's loop if tstclnt never connected.
                if output.status != 0 { await listener.close() }
                let info = try await accepted.value
                #expect(info?.encryptedClientHelloAccepted == true, "\(output)")
                #expect(info?.serverName == Self.secretName)
                await listener.close()
            }
        }

        @Test("our client hides the name from NSS's selfserv -X, which answers for the secret name",
              .enabled(if: ExternalTool.isInstalled("selfserv", "certutil", "pk12util", "openssl"), "needs libnss3-tools and openssl"))
        func selfservServer() async throws {
            try await withTimeout(seconds: 90) {
                let directory = try TemporaryDirectory()
                let certificate = directory.file("server.pem"), key = directory.file("server.key")
                try await SelfSignedFiles.make(certificate: certificate, key: key, subject: "/CN=\(Self.publicName)", altName: "DNS:\(Self.publicName),DNS:\(Self.secretName)")
                let database = "sql:" + directory.file("db")
                try FileManager.default.createDirectory(atPath: directory.file("db"), withIntermediateDirectories: true)
                for (tool, arguments) in [
                    ("openssl", ["pkcs12", "-export", "-in", certificate, "-inkey", key, "-name", "server", "-out", directory.file("server.p12"), "-passout", "pass:p"]),
                    ("certutil", ["-N", "-d", database, "--empty-password"]),
                    ("pk12util", ["-i", directory.file("server.p12"), "-d", database, "-W", "p"]),
                ] {
                    let output = try await ExternalTool.run(tool, arguments)
                    #expect(output.status == 0, "\(output)")
                }
                // selfserv -X takes base64 of a 2-byte length, the PKCS#8 key, then the ECHConfigList.
                let keys = try await EncryptedClientHelloKeys.generate(publicName: Self.publicName)
                let pem = try PEM.parse(keys.pemEncoded)
                let pkcs8 = pem[0].der
                let parameters = Base64.encode([UInt8(pkcs8.count >> 8), UInt8(pkcs8.count & 0xff)] + pkcs8 + keys.configList)
                let port = try RawTCP.freePort()
                let server = try ChildProcess("selfserv", ["-d", database, "-n", "server", "-p", "\(port)", "-V", "tls1.3:tls1.3", "-X", parameters])
                defer { server.stop() }
                try await RawTCP.waitUntilListening(port: port)
                var configuration = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: certificate))
                configuration.serverName = Self.secretName
                configuration.encryptedClientHelloConfigList = keys.configList
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: configuration)
                #expect(connection.info.encryptedClientHelloAccepted)
                try await connection.write(Array("GET / HTTP/1.0\r\n\r\n".utf8))
                let (page, _) = try await TestServers.readToEnd(connection)
                #expect(page.contains("HTTP/1.0 200 OK"), "\(page)")
                await connection.close()
            }
        }

        @Test("keys round-trip through their PEM encoding, and bad public names and lists are refused")
        func keysRoundTrip() async throws {
            try await withTimeout(seconds: 60) {
                let keys = try await EncryptedClientHelloKeys.generate(publicName: Self.publicName)
                let directory = try TemporaryDirectory()
                let file = try directory.write("ech.pem", keys.pemEncoded)
                let loaded = try await EncryptedClientHelloKeys.load(file: file)
                #expect(loaded.configList == keys.configList)
                #expect(loaded.configListBase64 == keys.configListBase64)
                for bad in ["", "127.0.0.1", "bad name", "under_score.example", "x.123"] {
                    await #expect(throws: TLSError.self, "\(bad)") { _ = try await EncryptedClientHelloKeys.generate(publicName: bad) }
                }
                var client = TLSConfiguration.makeClientConfiguration()
                client.encryptedClientHelloConfigList = [0, 3, 1, 2, 3]
                await #expect(throws: TLSError.self) { _ = try await TLSConnection.connect(host: "127.0.0.1", port: 9, configuration: client) }
            }
        }
    }
}
