import AsyncNSS
import Foundation
import Testing

extension Integration {
    @Suite("Keying-material exporter")
    struct ExporterTests {
        @Test("both ends export the same bytes", arguments: [TLSVersion.tls12, .tls13])
        func bothEndsAgree(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(min: version, max: version))
                let accepted = Task { () -> TLSConnection? in
                    for try await connection in listener { return connection }
                    return nil
                }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                let server = try #require(try await accepted.value)
                let fromClient = try await client.exportKeyingMaterial(label: "EXPERIMENTAL-asyncnss", context: [1, 2, 3], length: 32)
                let fromServer = try await server.exportKeyingMaterial(label: "EXPERIMENTAL-asyncnss", context: [1, 2, 3], length: 32)
                #expect(fromClient == fromServer)
                #expect(fromClient.count == 32)
                #expect(fromClient != [UInt8](repeating: 0, count: 32))
                let otherLabel = try await client.exportKeyingMaterial(label: "EXPERIMENTAL-other", context: [1, 2, 3], length: 32)
                let noContext = try await client.exportKeyingMaterial(label: "EXPERIMENTAL-asyncnss", length: 32)
                #expect(otherLabel != fromClient)
                #expect(noContext != fromClient)
                await #expect(throws: TLSError.self) { _ = try await client.exportKeyingMaterial(label: "", length: 32) }
                await client.close()
                await server.close()
                await listener.close()
            }
        }

        @Test("our exporter matches OpenSSL's", .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"), arguments: [TLSVersion.tls12, .tls13])
        func matchesOpenSSL(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
                let listener = try await TLSListener.bind(port: 0, configuration: .makeServerConfiguration(identity: identity))
                let exported = Task { () -> [UInt8]? in
                    for try await connection in listener {
                        let bytes = try await connection.exportKeyingMaterial(label: "EXPERIMENTAL-asyncnss", length: 20)
                        try await connection.write(Array("bye\n".utf8))
                        await connection.close()
                        return bytes
                    }
                    return nil
                }
                let output = try await ExternalTool.run("openssl", [
                    "s_client", "-connect", "127.0.0.1:\(listener.port)", "-CAfile", pki.caCertificate, "-servername", "localhost",
                    version == .tls12 ? "-tls1_2" : "-tls1_3", "-verify_return_error",
                    "-keymatexport", "EXPERIMENTAL-asyncnss", "-keymatexportlen", "20", "-ign_eof",
                ], timeout: 20)
                // The server closes with close_notify: s_client (-ign_eof) exits on it.
                #expect(output.exitedCleanly, "\(output)")
                #expect(output.elapsed < .seconds(10), "\(output)")
                let ours = try #require(try await exported.value)
                let hex = ours.map { String(format: "%02X", $0) }.joined()
                #expect(output.stdout.contains("Keying material: \(hex)"), "\(output)")
                await listener.close()
            }
        }
    }
}
