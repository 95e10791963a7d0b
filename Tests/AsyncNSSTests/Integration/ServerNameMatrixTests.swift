import AsyncNSS
import Foundation
import Testing

extension Integration {
    /// The identity chosen for a name is the only one the connection
    /// presents, whatever the key types of the default and the named identity
    /// and whatever the version. A per-name identity used to be added next to
    /// the default one, so NSS chose by key type and, on TLS 1.3, by list
    /// order: the default certificate came back for a name that had its own.
    @Suite("SNI presents the named identity for every key type and version")
    struct ServerNameMatrixTests {
        enum DefaultKind: String, CaseIterable, Sendable { case pemECSignedByCA, pemRSASignedByCA, selfSigned }
        enum NamedKind: String, CaseIterable, Sendable { case ec, rsa }

        static let cases: [(DefaultKind, NamedKind, TLSVersion)] = DefaultKind.allCases.flatMap { defaultKind in
            NamedKind.allCases.flatMap { named in [TLSVersion.tls12, .tls13].map { (defaultKind, named, $0) } }
        }

        private static func defaultIdentity(_ kind: DefaultKind) async throws -> TLSIdentity {
            let pki = try await TestPKI.shared()
            switch kind {
            case .pemECSignedByCA: return try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
            case .pemRSASignedByCA: return try await TLSIdentity.pem(certificateChainFile: pki.rsaServerCertificate, privateKeyFile: pki.rsaServerKey)
            case .selfSigned: return try await TLSIdentity.selfSigned(names: ["localhost"])
            }
        }

        @Test("default × named identity × version, with our client and openssl s_client",
              .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"), arguments: cases)
        func namedIdentityIsPresented(defaultKind: DefaultKind, namedKind: NamedKind, version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let directory = try TemporaryDirectory()
                let namedCertificate = directory.file("alt.pem"), namedKey = directory.file("alt.key")
                try await SelfSignedFiles.make(certificate: namedCertificate, key: namedKey, subject: "/CN=alt.example", altName: "DNS:alt.example", rsa: namedKind == .rsa)
                let named = try await TLSIdentity.pem(certificateChainFile: namedCertificate, privateKeyFile: namedKey)
                var configuration = TLSConfiguration.makeServerConfiguration(identity: try await Self.defaultIdentity(defaultKind))
                configuration.minimumVersion = version
                configuration.maximumVersion = version
                configuration.serverNameIdentities = ["alt.example": named]
                let listener = try await TLSListener.bind(port: 0, configuration: configuration)
                let server = Task { await TestServers.pong(listener) }
                let expectedDER = try #require(named.certificateChain.first).derBytes

                var client = TLSConfiguration.makeClientConfiguration(trust: .certificates(named.certificateChain))
                client.serverName = "alt.example"
                let connection = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
                #expect(connection.info.protocolVersion == version)
                #expect(connection.info.peerCertificates.first?.derBytes == expectedDER, "our client was shown \(connection.info.peerSubject ?? "nothing")")
                try await connection.write(Array("ping\n".utf8))
                #expect(try await TestServers.read(connection, through: "\n").hasPrefix("pong: ping"))
                await connection.close()

                let output = try await ExternalTool.run("openssl", [
                    "s_client", "-connect", "127.0.0.1:\(listener.port)", "-servername", "alt.example",
                    version == .tls12 ? "-tls1_2" : "-tls1_3", "-CAfile", namedCertificate, "-verify_return_error",
                    "-verify_hostname", "alt.example", "-showcerts", "-ign_eof",
                ], input: "ping\n")
                #expect(output.status == 0, "\(output)")
                #expect(output.stdout.contains("pong: ping"), "\(output)")
                let presented = try #require(PEMBlocks.first(in: output.stdout), "no certificate in \(output)")
                #expect(presented == expectedDER, "openssl s_client was shown another certificate: \(output.stdout.prefix(400))")
                await listener.close()
                await server.value
            }
        }

        /// A ClientHello in two TCP segments, as over a real network with
        /// post-quantum key shares: the poll thread sleeps between them (the
        /// bytes held for the look at the name must not count as readable),
        /// and the handshake goes on with the rest.
        @Test("a ClientHello that arrives in pieces is waited for without spinning")
        func fragmentedClientHello() async throws {
            try await withTimeout(seconds: 60) {
                var configuration = try await TestIdentities.serverConfiguration(min: .tls12, max: .tls12)
                configuration.serverNameIdentities = ["alt.example": try await TLSIdentity.selfSigned(names: ["alt.example"])]
                let listener = try await TLSListener.bind(port: 0, configuration: configuration)
                let server = Task { await EchoServer.serveAll(listener) }
                let hello = RawClientHello(cipherSuites: [0xC02B, 0xC02F], serverName: "alt.example").bytes
                let threads = ["nss-poll-hot", "nss-poll-cold"]
                let (answer, pollCPU) = try await onOwnThread { () -> ([UInt8], Double) in
                    let peer = try RawTCP(port: listener.port)
                    peer.send(Array(hello.prefix(40)))
                    usleep(200_000)
                    let before = threads.map { ThreadCPU.named($0) ?? 0 }
                    usleep(1_000_000)
                    let used = zip(threads, before).reduce(0.0) { $0 + (ThreadCPU.named($1.0) ?? 0) - $1.1 }
                    peer.send(Array(hello.dropFirst(40)))
                    let answer = peer.readAll(limit: 5 + 16)
                    peer.close()
                    return (answer, used)
                }
                #expect(FirstRecord(answer) == .serverHello, "\(FirstRecord(answer))")
                // A spin would use the whole second.
                #expect(pollCPU < 0.1, "the poll threads used \(pollCPU) s of CPU while the ClientHello was incomplete")
                await listener.close()
                await server.value
            }
        }

        @Test("a STARTTLS server presents the named identity too", arguments: [TLSVersion.tls12, .tls13])
        func startTLSServer(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let directory = try TemporaryDirectory()
                let namedCertificate = directory.file("alt.pem"), namedKey = directory.file("alt.key")
                try await SelfSignedFiles.make(certificate: namedCertificate, key: namedKey, subject: "/CN=alt.example", altName: "DNS:alt.example", rsa: true)
                let named = try await TLSIdentity.pem(certificateChainFile: namedCertificate, privateKeyFile: namedKey)
                var configuration = TLSConfiguration.makeServerConfiguration(identity: try await Self.defaultIdentity(.pemECSignedByCA))
                configuration.minimumVersion = version
                configuration.maximumVersion = version
                configuration.serverNameIdentities = ["alt.example": named]
                let listener = try await TCPListener.bind(port: 0)
                async let accepted = listener.accept()
                let plainClient = try await TCPConnection.connect(host: "127.0.0.1", port: listener.port)
                let plainServer = try await accepted
                async let serverTLS = plainServer.startTLS(configuration, role: .server)
                var client = TLSConfiguration.makeClientConfiguration(trust: .certificates(named.certificateChain))
                client.serverName = "alt.example"
                let connection = try await plainClient.startTLS(client, role: .client)
                let server = try await serverTLS
                #expect(connection.info.peerCertificates.first?.derBytes == named.certificateChain.first?.derBytes)
                #expect(server.info.serverName == "alt.example")
                await connection.close()
                await server.close()
                await listener.close()
            }
        }
    }
}
