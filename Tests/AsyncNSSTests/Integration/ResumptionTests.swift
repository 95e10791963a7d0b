import AsyncNSS
import Testing

extension Integration {
    @Suite("Session resumption")
    struct ResumptionTests {
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
