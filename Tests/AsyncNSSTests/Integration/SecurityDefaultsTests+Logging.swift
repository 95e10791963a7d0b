import AsyncNSS
import Foundation
import Testing

extension Integration.SecurityDefaultsTests {
    // MARK: Keys are never logged

    /// What must never appear in a log line or an error: every base64 line of
    /// the key file, every 8-byte window of the private scalar in hex, and the
    /// keying material exported on the connection.
    struct Secrets {
        var needles: [String] = []

        init(keyFile: String, exported: [UInt8] = []) throws {
            let text = try String(contentsOfFile: keyFile, encoding: .utf8)
            let body = text.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("-----") }
            needles += body.map(String.init)
            let der = try #require(Data(base64Encoded: body.joined()).map(Array.init))
            let scalar = Self.ecPrivateScalar(der)
            #expect(scalar.count == 32, "the test key is not a P-256 PKCS#8 key")
            for hex in [Self.hex(scalar), Self.hex(scalar).uppercased()] where hex.count >= 16 {
                var start = hex.startIndex
                while let end = hex.index(start, offsetBy: 16, limitedBy: hex.endIndex) {
                    needles.append(String(hex[start..<end]))
                    start = hex.index(start, offsetBy: 2)
                }
            }
            if !exported.isEmpty {
                needles += [Self.hex(exported), "\(exported)", Data(exported).base64EncodedString()]
            }
        }

        /// The first needle `text` contains.
        func leaked(in text: String) -> String? { needles.first { text.contains($0) } }

        /// The 32-byte private scalar of an EC PKCS#8 key: the OCTET STRING
        /// that follows `INTEGER 1` in its ECPrivateKey.
        static func ecPrivateScalar(_ der: [UInt8]) -> [UInt8] {
            let marker: [UInt8] = [0x02, 0x01, 0x01, 0x04, 0x20]
            guard der.count > marker.count + 32 else { return [] }
            for index in 0...(der.count - marker.count - 32) where Array(der[index..<index + marker.count]) == marker {
                return Array(der[(index + marker.count)..<(index + marker.count + 32)])
            }
            return []
        }

        static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
    }

    @Test("at trace level, neither the listener's log nor any error carries key material, after good and bad handshakes")
    func keysNeverLogged() async throws {
        try await withTimeout(seconds: 60) {
            let pki = try await TestPKI.shared()
            let identity = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
            let server = try await SecurityServer.start(identity: identity)
            let trust = try await TLSTrust.pem(file: pki.caCertificate)
            var errors: [String] = []

            // A good connection, with keying material exported on the client.
            let client = try await TLSConnection.connect(host: "localhost", port: server.port, configuration: .makeClientConfiguration(trust: trust))
            let exported = try await client.exportKeyingMaterial(label: "EXPERIMENTAL-asyncnss-log", length: 32)
            try await client.write(Array("ping".utf8))
            _ = try await client.receive(maxBytes: 4)
            await client.close()

            // A client that checks another name, and one that sends garbage.
            var wrong = TLSConfiguration.makeClientConfiguration(trust: trust)
            wrong.serverName = "wrong.example"
            do {
                _ = try await TLSConnection.connect(host: "127.0.0.1", port: server.port, configuration: wrong)
            } catch {
                errors.append("\(error)")
            }
            let port = server.port
            _ = try await onOwnThread {
                let peer = try RawTCP(port: port)
                peer.send([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
                _ = peer.readAll()
                peer.close()
            }

            #expect(await server.log.waitForLine(containing: ["handshake failed", "SSL_ERROR"]) != nil, "\(server.log.all)")
            await server.stop()

            let secrets = try Secrets(keyFile: pki.serverKey, exported: exported)
            let lines = server.log.all
            #expect(!lines.isEmpty)
            #expect(errors.count == 1)
            for text in lines + errors {
                #expect(secrets.leaked(in: text) == nil, "key material in: \(text)")
            }
        }
    }

    @Test("errors for a key that does not match, is corrupt or is SEC1 name the file and carry no key material")
    func keyErrorsCarryNoKey() async throws {
        try await withTimeout(seconds: 60) {
            let pki = try await TestPKI.shared()
            var messages: [(String, String)] = []     // (key file, error)

            do {
                _ = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.rsaServerKey)
                Issue.record("an RSA key was accepted for an EC certificate")
            } catch {
                messages.append((pki.rsaServerKey, "\(error)"))
            }
            do {
                _ = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.sec1Key)
                Issue.record("a SEC1 key was accepted")
            } catch {
                messages.append((pki.sec1Key, "\(error)"))
            }

            // The key with its private scalar replaced by other bytes: well-formed PEM and DER, wrong key.
            let keyText = try String(contentsOfFile: pki.serverKey, encoding: .utf8)
            let certificateText = try String(contentsOfFile: pki.serverCertificate, encoding: .utf8)
            let body = keyText.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("-----") }.joined()
            var der = try #require(Data(base64Encoded: body).map(Array.init))
            let scalar = Secrets.ecPrivateScalar(der)
            let offset = try #require(der.indices.first { Array(der[$0...].prefix(32)) == scalar && scalar.count == 32 })
            for index in offset..<offset + 32 { der[index] ^= 0x5A }
            let altered = "-----BEGIN PRIVATE KEY-----\n" + Data(der).base64EncodedString(options: .lineLength64Characters) + "\n-----END PRIVATE KEY-----\n"
            let alteredFile = try TemporaryDirectory()
            let alteredPath = try alteredFile.write("altered.key", altered)
            do {
                _ = try await TLSIdentity.pem(certificateChain: certificateText, privateKey: altered)
                Issue.record("a key that does not match was accepted")
            } catch {
                messages.append((alteredPath, "\(error)"))
            }

            #expect(messages.count == 3)
            let secrets = try Secrets(keyFile: pki.serverKey)
            for (keyFile, message) in messages {
                #expect(secrets.leaked(in: message) == nil, "key material in: \(message)")
                // Nor may the lines of the key file that was loaded.
                let ownLines = try String(contentsOfFile: keyFile, encoding: .utf8).split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("-----") }
                #expect(ownLines.allSatisfy { !message.contains($0) }, "key material in: \(message)")
            }
        }
    }
}
