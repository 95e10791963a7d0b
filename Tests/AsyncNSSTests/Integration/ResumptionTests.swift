import AsyncNSS
import Foundation
import Synchronization
import Testing

extension Integration {
    @Suite("Session resumption")
    struct ResumptionTests {
        @Test("NSS strsclnt resumes against our server: TLS 1.2 session IDs, TLS 1.3 tickets",
              .enabled(if: ExternalTool.isInstalled("strsclnt", "certutil"), "needs strsclnt and certutil: apt-get install libnss3-tools"),
              arguments: [TLSVersion.tls12, .tls13])
        func strsclntResumes(version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(min: version, max: version))
                // An atomic, not a Mutex: TSan cannot see Synchronization.Mutex's
                // contended hand-over on Linux (RELIABILITY.md), and the handlers contend.
                let resumed = Atomic<Int>(0)
                let server = Task {
                    await TestServers.respond(listener, until: "\r\n\r\n") { _, info in
                        if info.resumed { resumed.add(1, ordering: .relaxed) }
                        return "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
                    }
                }
                // TLS 1.2 resumes by session ID, TLS 1.3 by ticket.
                let (hits, output) = try await Strsclnt.resumed(port: listener.port, version: version == .tls12 ? "tls1.2" : "tls1.3", connections: 20, threads: 2, tickets: version == .tls13)
                #expect(output.status == 0, "\(output)")
                #expect(hits >= 10, "strsclnt's own count of resumed connections: \(output)")
                await listener.close()
                await server.value
                #expect(resumed.load(ordering: .relaxed) >= 10, "the server saw them resumed too")
            }
        }

        @Test("a second connection with the same configuration resumes", arguments: [TLSVersion.tls12, .tls13])
        func resumes(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(min: version, max: version))
                let server = Task { await EchoServer.serveAll(listener) }
                let configuration = try await TestIdentities.clientConfiguration()
                let first = try await roundTrip(port: listener.port, configuration)
                let second = try await roundTrip(port: listener.port, configuration)
                #expect(first.resumed == false)
                #expect(second.resumed == true)
                #expect(second.protocolVersion == version)
                await listener.close()
                await server.value
            }
        }

        @Test("a listener that verifies client certificates never resumes", arguments: [TLSVersion.tls12, .tls13])
        func clientAuthenticationNeverResumes(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let pki = try await TestPKI.shared()
                var serverConfiguration = try await TestIdentities.serverConfiguration(min: version, max: version)
                serverConfiguration.clientCertificatePolicy = .require
                serverConfiguration.trust = try await .pem(file: pki.caCertificate)
                let listener = try await TLSListener.bind(port: 0, configuration: serverConfiguration)
                let server = Task { await EchoServer.serveAll(listener) }
                var configuration = try await TestIdentities.clientConfiguration()
                configuration.identity = try await .pem(certificateChainFile: pki.clientCertificate, privateKeyFile: pki.clientKey)
                let first = try await roundTrip(port: listener.port, configuration)
                let second = try await roundTrip(port: listener.port, configuration)
                #expect(first.resumed == false)
                #expect(second.resumed == false)
                await listener.close()
                await server.value
            }
        }

        @Test("an invalidated session and a cleared client cache are not resumed", arguments: [TLSVersion.tls12, .tls13])
        func invalidateAndClear(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(min: version, max: version))
                let server = Task { await EchoServer.serveAll(listener) }
                let configuration = try await TestIdentities.clientConfiguration()

                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: configuration)
                try await client.write([1])
                var iterator = client.inbound.makeAsyncIterator()
                #expect(try await iterator.next() == [1])
                try await client.invalidateSession()
                await client.close()
                #expect(try await roundTrip(port: listener.port, configuration).resumed == false)

                #expect(try await roundTrip(port: listener.port, configuration).resumed == true)
                NSSRuntime.clearClientSessionCache()
                #expect(try await roundTrip(port: listener.port, configuration).resumed == false)
                await listener.close()
                await server.value
            }
        }

        /// Connects, echoes a byte (which also reads any TLS 1.3 ticket), closes.
        private func roundTrip(port: Int, _ configuration: TLSConfiguration) async throws -> TLSConnectionInfo {
            let client = try await TLSConnection.connect(host: "127.0.0.1", port: port, configuration: configuration)
            try await client.write([7])
            var iterator = client.inbound.makeAsyncIterator()
            #expect(try await iterator.next() == [7])
            let info = client.info
            await client.close()
            return info
        }
    }
}
