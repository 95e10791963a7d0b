import AsyncNSS
import Foundation
import Logging
import Testing

extension Integration {
    @Suite("Identities: PEM files and text, NSS databases, self-signed")
    struct IdentityTests {
        private typealias Harness = IdentityTrustHarness

        // MARK: PEM files

        @Test("PEM EC identity serves our client", arguments: [TLSVersion.tls12, .tls13])
        func pemEC(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
                #expect(identity.certificateChain.count == 1)
                #expect(identity.certificateChain.first?.subject.contains("CN=localhost") == true)
                #expect(identity.certificateChain.first?.pemRepresentation.hasPrefix("-----BEGIN CERTIFICATE-----") == true)

                let client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                let info = try await Harness.roundTrip(identity: identity, client: client, host: "localhost", version: version)
                #expect(info.protocolVersion == version)
                #expect(info.peerCertificates.first?.subject.contains("CN=localhost") == true, "\(info.peerCertificates)")
                #expect(info.peerCertificates.first?.derBytes == identity.certificateChain.first?.derBytes)
            }
        }

        @Test("PEM RSA identity serves TLS 1.2 with an RSA suite, and TLS 1.3", arguments: [TLSVersion.tls12, .tls13])
        func pemRSA(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: pki.rsaServerCertificate, privateKeyFile: pki.rsaServerKey)
                let client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                let info = try await Harness.roundTrip(identity: identity, client: client, version: version)
                #expect(info.protocolVersion == version)
                #expect(info.peerSubject?.contains("CN=localhost") == true)
                if version == .tls12 {
                    #expect(info.cipherSuite.contains("RSA"), "\(info.cipherSuite)")
                } else {
                    #expect(info.cipherSuite.hasPrefix("TLS_AES_") || info.cipherSuite.hasPrefix("TLS_CHACHA20_"), "\(info.cipherSuite)")
                }
            }
        }

        @Test("a chain file with leaf and CA: the client receives both certificates")
        func chainFile() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let scratch = try TemporaryDirectory()
                let leaf = try String(contentsOfFile: pki.serverCertificate, encoding: .utf8)
                let ca = try String(contentsOfFile: pki.caCertificate, encoding: .utf8)
                let chainFile = try scratch.write("chain.pem", leaf + ca)
                let identity = try await TLSIdentity.pem(certificateChainFile: chainFile, privateKeyFile: pki.serverKey)
                #expect(identity.certificateChain.count == 2)
                #expect(identity.certificateChain.first?.subject.contains("CN=localhost") == true)
                #expect(identity.certificateChain.last?.subject.contains("CN=AsyncNSS Test CA") == true)

                let client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                let info = try await Harness.roundTrip(identity: identity, client: client)
                #expect(info.peerCertificates.count == 2, "\(info.peerCertificates)")
                #expect(info.peerCertificates.first?.subject.contains("CN=localhost") == true)
                #expect(info.peerCertificates.last?.subject.contains("CN=AsyncNSS Test CA") == true)
            }
        }

        @Test("in-memory PEM strings make a working identity")
        func inMemoryPEM() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let certificate = try String(contentsOfFile: pki.serverCertificate, encoding: .utf8)
                let key = try String(contentsOfFile: pki.serverKey, encoding: .utf8)
                let identity = try await TLSIdentity.pem(certificateChain: certificate, privateKey: key)
                #expect(identity.certificateChain.count == 1)
                let client = TLSConfiguration.makeClientConfiguration(trust: try TLSTrust.pem(try String(contentsOfFile: pki.caCertificate, encoding: .utf8)))
                let info = try await Harness.roundTrip(identity: identity, client: client)
                #expect(info.peerSubject?.contains("CN=localhost") == true)
            }
        }

        @Test("PEM files with CRLF line endings work")
        func crlf() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let scratch = try TemporaryDirectory()
                func crlfCopy(_ path: String, _ name: String) throws -> String {
                    let text = try String(contentsOfFile: path, encoding: .utf8)
                    let converted = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\n", with: "\r\n")
                    #expect(converted.contains("\r\n"))
                    return try scratch.write(name, converted)
                }
                let certificate = try crlfCopy(pki.serverCertificate, "server-crlf.pem")
                let key = try crlfCopy(pki.serverKey, "server-crlf.key")
                let ca = try crlfCopy(pki.caCertificate, "ca-crlf.pem")
                let identity = try await TLSIdentity.pem(certificateChainFile: certificate, privateKeyFile: key)
                let client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: ca))
                let info = try await Harness.roundTrip(identity: identity, client: client)
                #expect(info.peerSubject?.contains("CN=localhost") == true)
            }
        }

        // MARK: PEM errors

        @Test("a key that does not match the certificate is refused, naming both files")
        func mismatchedKey() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let error = try await #require(throws: TLSError.self) {
                    try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.clientKey)
                }
                #expect(error.kind == .invalidIdentity)
                #expect(error.nssName == nil, "\(error)")
                #expect(error.description.contains("does not match"), "\(error)")
                #expect(error.description.contains(pki.clientKey), "\(error)")
                #expect(error.description.contains(pki.serverCertificate), "\(error)")
            }
        }

        @Test("a key of another type than the certificate (EC key, RSA certificate) is refused")
        func mismatchedKeyType() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let error = try await #require(throws: TLSError.self) {
                    try await TLSIdentity.pem(certificateChainFile: pki.rsaServerCertificate, privateKeyFile: pki.serverKey)
                }
                #expect(error.kind == .invalidIdentity)
                #expect(error.description.contains("does not match"), "\(error)")
                #expect(error.description.contains(pki.serverKey), "\(error)")
            }
        }

        @Test("a SEC1 EC key is refused with the conversion command")
        func sec1Key() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let error = try await #require(throws: TLSError.self) {
                    try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.sec1Key)
                }
                #expect(error.kind == .invalidIdentity)
                #expect(error.nssName == nil, "\(error)")
                #expect(error.description.contains("SEC1"), "\(error)")
                #expect(error.description.contains("openssl pkcs8 -topk8"), "\(error)")
                #expect(error.description.contains(pki.sec1Key), "\(error)")
            }
        }

        @Test("a PKCS#1 RSA key is refused with the conversion command")
        func pkcs1Key() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let error = try await #require(throws: TLSError.self) {
                    try await TLSIdentity.pem(certificateChainFile: pki.rsaServerCertificate, privateKeyFile: pki.pkcs1Key)
                }
                #expect(error.kind == .invalidIdentity)
                #expect(error.description.contains("PKCS#1"), "\(error)")
                #expect(error.description.contains("openssl pkcs8 -topk8"), "\(error)")
                #expect(error.description.contains(pki.pkcs1Key), "\(error)")
            }
        }

        @Test("a file that does not exist is named in the error", arguments: [true, false])
        func missingFile(missingIsCertificate: Bool) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let scratch = try TemporaryDirectory()
                let missing = scratch.file("does-not-exist.pem")
                let error = try await #require(throws: TLSError.self) {
                    if missingIsCertificate {
                        _ = try await TLSIdentity.pem(certificateChainFile: missing, privateKeyFile: pki.serverKey)
                    } else {
                        _ = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: missing)
                    }
                }
                #expect(error.kind == .invalidIdentity)
                #expect(error.description.contains(missing), "\(error)")
                #expect(error.description.contains("No such file"), "\(error)")
            }
        }

        @Test("a certificate file without a CERTIFICATE block is refused")
        func noCertificateBlock() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let scratch = try TemporaryDirectory()
                // A valid PEM file, but it holds a key, not a certificate.
                let keyAsCertificate = try scratch.write("not-a-certificate.pem", try String(contentsOfFile: pki.serverKey, encoding: .utf8))
                let error = try await #require(throws: TLSError.self) {
                    try await TLSIdentity.pem(certificateChainFile: keyAsCertificate, privateKeyFile: pki.serverKey)
                }
                #expect(error.kind == .invalidIdentity)
                #expect(error.description.contains("CERTIFICATE"), "\(error)")
                #expect(error.description.contains(keyAsCertificate), "\(error)")

                // Plain text with no PEM block at all.
                let text = try scratch.write("text.pem", "hello, I am not a certificate\n")
                let textError = try await #require(throws: TLSError.self) {
                    try await TLSIdentity.pem(certificateChainFile: text, privateKeyFile: pki.serverKey)
                }
                #expect(textError.kind == .invalidIdentity)
                #expect(textError.description.contains("CERTIFICATE"), "\(textError)")
                #expect(textError.description.contains(text), "\(textError)")
            }
        }

        @Test("a key file without a PRIVATE KEY block is refused")
        func noKeyBlock() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let error = try await #require(throws: TLSError.self) {
                    try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.caCertificate)
                }
                #expect(error.kind == .invalidIdentity)
                #expect(error.description.contains("PRIVATE KEY"), "\(error)")
                #expect(error.description.contains(pki.caCertificate), "\(error)")
            }
        }

        @Test("an Ed25519 key is refused for its type, not as a malformed PKCS#8 file",
              .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
        func ed25519KeyNamed() async throws {
            try await withTimeout(seconds: 30) {
                let directory = try TemporaryDirectory()
                let made = try await ExternalTool.run("openssl", ["req", "-x509", "-newkey", "ed25519", "-nodes", "-days", "2", "-subj", "/CN=ed25519",
                                                                  "-keyout", directory.file("key.pem"), "-out", directory.file("cert.pem")])
                #expect(made.status == 0, "\(made)")
                let error = await #expect(throws: TLSError.self) {
                    _ = try await TLSIdentity.pem(certificateChainFile: directory.file("cert.pem"), privateKeyFile: directory.file("key.pem"))
                }
                #expect(error?.kind == .invalidIdentity)
                #expect(error?.message.contains("this is an Ed25519 key, which NSS cannot use for TLS") == true, "\(String(describing: error))")
                #expect(error?.message.contains("unencrypted PKCS#8") == false, "\(String(describing: error))")
            }
        }

        // MARK: NSS database

        static let hasNSSTools = ExternalTool.isInstalled("certutil", "pk12util")

        @Test("an identity from the NSS database serves our client", .enabled(if: hasNSSTools))
        func databaseIdentity() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let identity = try await TLSIdentity.database(pki.database, nickname: "server", password: TestPKI.databasePassword)
                #expect(identity.certificateChain.count == 1)
                #expect(identity.certificateChain.first?.subject.contains("CN=localhost") == true)
                let client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                for version in [TLSVersion.tls12, .tls13] {
                    let info = try await Harness.roundTrip(identity: identity, client: client, host: "localhost", version: version)
                    #expect(info.protocolVersion == version)
                    #expect(info.peerSubject?.contains("CN=localhost") == true)
                }
            }
        }

        @Test("an RSA identity from the NSS database serves our client", .enabled(if: hasNSSTools), arguments: [TLSVersion.tls12, .tls13])
        func databaseRSAIdentity(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let identity = try await TLSIdentity.database(pki.database, nickname: "rsa-server", password: TestPKI.databasePassword)
                let client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                let info = try await Harness.roundTrip(identity: identity, client: client, host: "localhost", version: version)
                #expect(info.protocolVersion == version)
                #expect(info.peerCertificates.first?.derBytes == identity.certificateChain.first?.derBytes)
                if version == .tls12 { #expect(info.cipherSuite.hasPrefix("TLS_ECDHE_RSA_"), "\(info.cipherSuite)") }
            }
        }

        @Test("database errors: wrong password, no password, unknown nickname", .enabled(if: hasNSSTools))
        func databaseErrors() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                // A private copy: the runtime opens a database once and stays
                // logged in, so the shared one may already be unlocked.
                let (scratch, database) = try await Harness.copyOfDatabase(pki)
                defer { withExtendedLifetime(scratch) {} }

                let wrong = try await #require(throws: TLSError.self) {
                    try await TLSIdentity.database(database, nickname: "server", password: "not-the-password")
                }
                #expect(wrong.kind == .invalidIdentity, "\(wrong)")
                #expect(wrong.nssName == "SEC_ERROR_BAD_PASSWORD", "\(wrong)")
                #expect(wrong.description.contains("password"), "\(wrong)")
                #expect(wrong.description.contains(database), "\(wrong)")

                let missing = try await #require(throws: TLSError.self) {
                    try await TLSIdentity.database(database, nickname: "server")
                }
                #expect(missing.kind == .invalidIdentity)
                #expect(missing.description.contains("password"), "\(missing)")
                #expect(missing.description.contains(database), "\(missing)")

                let unknown = try await #require(throws: TLSError.self) {
                    try await TLSIdentity.database(database, nickname: "no-such-nickname", password: TestPKI.databasePassword)
                }
                #expect(unknown.kind == .invalidIdentity)
                #expect(unknown.description.contains("certutil -L"), "\(unknown)")
                #expect(unknown.description.contains("no-such-nickname"), "\(unknown)")

                // After all that, the right password still works.
                let identity = try await TLSIdentity.database(database, nickname: "server", password: TestPKI.databasePassword)
                #expect(identity.certificateChain.first?.subject.contains("CN=localhost") == true)
            }
        }

        @Test("a wrong password is refused even after the database was unlocked", .enabled(if: hasNSSTools))
        func wrongPasswordAfterUnlock() async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let (scratch, database) = try await Harness.copyOfDatabase(pki)
                defer { withExtendedLifetime(scratch) {} }
                _ = try await TLSIdentity.database(database, nickname: "server", password: TestPKI.databasePassword)
                let wrong = try await #require(throws: TLSError.self, "a wrong password must not load the key because the token is already logged in") {
                    try await TLSIdentity.database(database, nickname: "server", password: "not-the-password")
                }
                #expect(wrong.nssName == "SEC_ERROR_BAD_PASSWORD", "\(wrong)")
                #expect(wrong.description.contains("password"), "\(wrong)")
                // The right password still works.
                let identity = try await TLSIdentity.database(database, nickname: "server", password: TestPKI.databasePassword)
                #expect(identity.certificateChain.first?.subject.contains("CN=localhost") == true)
            }
        }

        @Test("a database directory that does not exist is refused", .enabled(if: hasNSSTools))
        func missingDatabase() async throws {
            try await withTimeout(seconds: 30) {
                let scratch = try TemporaryDirectory()
                let location = "sql:" + scratch.file("no-such-db")
                let error = try await #require(throws: TLSError.self) {
                    try await TLSIdentity.database(location, nickname: "server", password: TestPKI.databasePassword)
                }
                #expect(error.description.contains(location), "\(error)")
            }
        }

        // MARK: Self-signed

        @Test("a self-signed identity is trusted by pinning, and checked against the name")
        func selfSigned() async throws {
            try await withTimeout(seconds: 30) {
                let identity = try await TLSIdentity.selfSigned(names: ["example.test", "127.0.0.1"])
                #expect(identity.certificateChain.count == 1)
                #expect(identity.certificateChain.first?.subject == "CN=example.test")

                var client = TLSConfiguration.makeClientConfiguration(trust: .certificates(identity.certificateChain))
                client.serverName = "example.test"
                let info = try await Harness.roundTrip(identity: identity, client: client)
                #expect(info.serverName == "example.test")
                #expect(info.peerCertificates.first?.derBytes == identity.certificateChain.first?.derBytes)

                // The IP address in the subjectAltName counts too.
                client.serverName = nil
                _ = try await Harness.roundTrip(identity: identity, client: client)

                client.serverName = "other.test"
                let error = try await Harness.failedConnect(identity: identity, client: client)
                #expect(error.kind == .nss)
                #expect(error.nssName == "SSL_ERROR_BAD_CERT_DOMAIN", "\(error)")
                #expect(error.description.hasPrefix("handshake with 127.0.0.1:"), "\(error)")
            }
        }

        @Test("two self-signed identities made at once are distinct and each serves its own handshake")
        func concurrentSelfSigned() async throws {
            try await withTimeout(seconds: 30) {
                async let first = TLSIdentity.selfSigned(names: ["example.test", "127.0.0.1"])
                async let second = TLSIdentity.selfSigned(names: ["example.test", "127.0.0.1"])
                let (a, b) = try await (first, second)
                let aDER = try #require(a.certificateChain.first?.derBytes)
                let bDER = try #require(b.certificateChain.first?.derBytes)
                #expect(aDER != bDER)

                for (identity, other) in [(a, b), (b, a)] {
                    var client = TLSConfiguration.makeClientConfiguration(trust: .certificates(identity.certificateChain))
                    client.serverName = "example.test"
                    let info = try await Harness.roundTrip(identity: identity, client: client)
                    #expect(info.peerCertificates.first?.derBytes == identity.certificateChain.first?.derBytes)

                    // A client pinned to one of them refuses the other.
                    let error = try await Harness.failedConnect(identity: other, client: client)
                    #expect(error.kind == .nss, "\(error)")
                    #expect(error.nssName == "SEC_ERROR_UNKNOWN_ISSUER", "\(error)")
                }
            }
        }
    }
}

/// Servers and clients for the identity and trust tests.
enum IdentityTrustHarness {
    static let line = Array("ping over AsyncNSS\n".utf8)

    /// Serves `identity` on 127.0.0.1 (at exactly `version`, if given), connects
    /// with `client` to `host`, round-trips a line and returns the client's view.
    static func roundTrip(
        identity: TLSIdentity,
        client: TLSConfiguration,
        host: String = "127.0.0.1",
        version: TLSVersion? = nil
    ) async throws -> TLSConnectionInfo {
        var server = TLSConfiguration.makeServerConfiguration(identity: identity)
        if let version {
            server.minimumVersion = version
            server.maximumVersion = version
        }
        return try await roundTrip(server: server, client: client, host: host)
    }

    static func roundTrip(server: TLSConfiguration, client: TLSConfiguration, host: String = "127.0.0.1") async throws -> TLSConnectionInfo {
        let (logger, log) = CapturingLogHandler.logger()
        // A round trip that worked logs nothing above debug on the server.
        defer { #expect(log.all.filter { !$0.hasPrefix("trace ") && !$0.hasPrefix("debug ") }.isEmpty, "\(log.all)") }
        let listener = try await TLSListener.bind(port: 0, configuration: server, logger: logger)
        let serving = Task { try await EchoServer.serveOne(listener) }
        do {
            let connection = try await TLSConnection.connect(host: host, port: listener.port, configuration: client)
            let info = connection.info
            try await connection.write(line)
            var received: [UInt8] = []
            for try await chunk in connection.inbound {
                received += chunk
                if received.count >= line.count { break }
            }
            #expect(received == line)
            await connection.close()
            try await serving.value
            await listener.close()
            return info
        } catch {
            await listener.close()
            _ = try? await serving.value
            throw error
        }
    }

    /// Serves `identity` and returns the error with which `client` fails to connect.
    static func failedConnect(identity: TLSIdentity, client: TLSConfiguration, host: String = "127.0.0.1") async throws -> TLSError {
        try await failedConnect(server: .makeServerConfiguration(identity: identity), client: client, host: host)
    }

    static func failedConnect(server: TLSConfiguration, client: TLSConfiguration, host: String = "127.0.0.1") async throws -> TLSError {
        let (logger, log) = CapturingLogHandler.logger()
        let listener = try await TLSListener.bind(port: 0, configuration: server, logger: logger)
        let serving = Task { await EchoServer.serveAll(listener) }
        defer { serving.cancel() }
        do {
            let connection = try await TLSConnection.connect(host: host, port: listener.port, configuration: client)
            await connection.close()
            await listener.close()
            await serving.value
            Issue.record("the connection to \(host) succeeded with \(connection.info.peerSubject ?? "no certificate")")
            throw Unexpected.connected
        } catch let error as TLSError {
            // The server saw the handshake fail too, and said so.
            #expect(await log.waitForLine(containing: ["handshake failed"]) != nil, "\(log.all)")
            await listener.close()
            await serving.value
            return error
        }
    }

    enum Unexpected: Error { case connected }

    /// A copy of the test PKI's NSS database in a new directory; keep the
    /// returned directory alive while the database is in use.
    static func copyOfDatabase(_ pki: TestPKI) async throws -> (TemporaryDirectory, String) {
        let scratch = try TemporaryDirectory()
        let source = String(pki.database.dropFirst("sql:".count))
        let target = scratch.file("nssdb")
        try FileManager.default.copyItem(atPath: source, toPath: target)
        return (scratch, "sql:" + target)
    }
}
