import AsyncNSS
import Foundation
import Testing

extension Integration {
    @Suite("Key log files")
    struct KeyLogIntegrationTests {
        /// The lines of `path` once it has `count` of them (the writer is a thread of its own).
        static func lines(_ path: String, count: Int) async throws -> [String] {
            let deadline = ContinuousClock.now + .seconds(10)
            while true {
                let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                let lines = text.split(separator: "\n").map(String.init)
                if lines.count >= count || ContinuousClock.now > deadline { return lines }
                try await Task.sleep(for: .milliseconds(20))
            }
        }

        @Test("both ends of a TLS 1.3 connection log the same four secrets under the ClientHello's random; TLS 1.2 logs none",
              arguments: [false, true])
        func bothEndsAgree(rsa: Bool) async throws {
            try await withTimeout(seconds: 30) {
                let directory = try TemporaryDirectory()
                let pki = try await TestPKI.shared()
                let identity = try await TLSIdentity.pem(certificateChainFile: rsa ? pki.rsaServerCertificate : pki.serverCertificate,
                                                         privateKeyFile: rsa ? pki.rsaServerKey : pki.serverKey)
                var server = TLSConfiguration.makeServerConfiguration(identity: identity)
                server.keyLog = try await TLSKeyLog.file(directory.file("server.keys"))
                let listener = try await TLSListener.bind(port: 0, configuration: server)
                let serving = Task { await EchoServer.serveAll(listener) }
                var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                client.serverName = "localhost"
                client.keyLog = try await TLSKeyLog.file(directory.file("client.keys"))
                for version in [TLSVersion.tls13, .tls12] {
                    client.minimumVersion = version
                    client.maximumVersion = version
                    let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                    try await connection.write([1])
                    var inbound = connection.inbound.makeAsyncIterator()
                    #expect(try await inbound.next() == [1])
                    await connection.close()
                }
                let serverLines = try await Self.lines(directory.file("server.keys"), count: 4)
                let clientLines = try await Self.lines(directory.file("client.keys"), count: 4)
                #expect(serverLines.count == 4, "\(serverLines)")
                #expect(Set(serverLines) == Set(clientLines), "server \(serverLines) client \(clientLines)")
                let labels = Set(serverLines.map { $0.split(separator: " ")[0] })
                #expect(labels == ["CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"])
                let randoms = Set(serverLines.map { $0.split(separator: " ")[1] })
                #expect(randoms.count == 1 && randoms.first?.count == 64, "\(randoms)")
                #expect(serverLines.allSatisfy { $0.split(separator: " ")[2].count == 64 }, "SHA-256 secrets, 32 bytes")
                let attributes = try FileManager.default.attributesOfItem(atPath: directory.file("server.keys"))
                #expect((attributes[.posixPermissions] as? Int) == 0o600)
                await listener.close()
                await serving.value
            }
        }
    }
}
