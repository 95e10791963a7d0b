import AsyncNSS
import Testing

extension Integration {
    @Suite("An identity per server name (SNI)")
    struct ServerNameTests {
        private struct Setup {
            let listener: TLSListener
            let server: Task<Void, Never>
            let named: TLSIdentity
            let wildcard: TLSIdentity
        }

        private func setUp(unknown: UnknownServerNamePolicy, version: TLSVersion = .tls13) async throws -> Setup {
            let named = try await TLSIdentity.selfSigned(names: ["a.test"])
            let wildcard = try await TLSIdentity.selfSigned(names: ["*.wild.test"])
            var configuration = try await TestIdentities.serverConfiguration(min: version, max: version)
            configuration.serverNameIdentities = ["A.test": named, "*.wild.test": wildcard]
            configuration.unknownServerName = unknown
            let listener = try await TLSListener.bind(port: 0, configuration: configuration)
            return Setup(listener: listener, server: Task { await EchoServer.serveAll(listener) }, named: named, wildcard: wildcard)
        }

        private func connect(_ setup: Setup, name: String, trust: TLSTrust) async throws -> TLSConnectionInfo {
            var configuration = TLSConfiguration.makeClientConfiguration(trust: trust)
            configuration.serverName = name
            let client = try await TLSConnection.connect(host: "127.0.0.1", port: setup.listener.port, configuration: configuration)
            try await client.write([9])
            var iterator = client.inbound.makeAsyncIterator()
            #expect(try await iterator.next() == [9])
            let info = client.info
            await client.close()
            return info
        }

        @Test("each name gets its identity, verified; unknown names get the default", arguments: [TLSVersion.tls12, .tls13])
        func namesSelectIdentities(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let setup = try await setUp(unknown: .useDefaultIdentity, version: version)
                let exact = try await connect(setup, name: "a.test", trust: .certificates(setup.named.certificateChain))
                #expect(exact.peerSubject == "CN=a.test")
                let wild = try await connect(setup, name: "host.wild.test", trust: .certificates(setup.wildcard.certificateChain))
                #expect(wild.peerSubject == "CN=*.wild.test")
                let other = try await connect(setup, name: "unknown.test", trust: .insecureNoVerification)
                #expect(other.peerSubject == "CN=localhost")
                let plain = try await connect(setup, name: "localhost", trust: .certificates(try await TestIdentities.localhost().certificateChain))
                #expect(plain.peerSubject == "CN=localhost")
                await setup.listener.close()
                await setup.server.value
            }
        }

        @Test("an unknown name is refused when the policy says so")
        func unknownNameRejected() async throws {
            try await withTimeout(seconds: 30) {
                let setup = try await setUp(unknown: .reject)
                var configuration = TLSConfiguration.makeClientConfiguration(trust: .insecureNoVerification)
                configuration.serverName = "unknown.test"
                let error = await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "127.0.0.1", port: setup.listener.port, configuration: configuration)
                }
                #expect(error?.nssName == "SSL_ERROR_UNRECOGNIZED_NAME_ALERT", "\(String(describing: error))")
                // Known names still work on the same listener.
                let exact = try await connect(setup, name: "a.test", trust: .certificates(setup.named.certificateChain))
                #expect(exact.peerSubject == "CN=a.test")
                await setup.listener.close()
                await setup.server.value
            }
        }

        @Test("a selector chooses identities for names the map does not know; the rest follow the policy", arguments: [TLSVersion.tls12, .tls13])
        func selectorChoosesIdentities(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let mapped = try await TLSIdentity.selfSigned(names: ["mapped.test"])
                let selected = try await TLSIdentity.selfSigned(names: ["tenant-7.example"])
                var configuration = try await TestIdentities.serverConfiguration(min: version, max: version)
                configuration.serverNameIdentities = ["mapped.test": mapped]
                configuration.serverNameSelector = { name in name.hasPrefix("tenant-") ? selected : nil }
                configuration.unknownServerName = .reject
                let listener = try await TLSListener.bind(port: 0, configuration: configuration)
                let setup = Setup(listener: listener, server: Task { await EchoServer.serveAll(listener) }, named: mapped, wildcard: selected)
                let fromMap = try await connect(setup, name: "mapped.test", trust: .certificates(mapped.certificateChain))
                #expect(fromMap.peerSubject == "CN=mapped.test")
                let fromSelector = try await connect(setup, name: "tenant-7.example", trust: .certificates(selected.certificateChain))
                #expect(fromSelector.peerSubject == "CN=tenant-7.example")
                var refused = TLSConfiguration.makeClientConfiguration(trust: .insecureNoVerification)
                refused.serverName = "nobody.example"
                let error = await #expect(throws: TLSError.self) {
                    _ = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: refused)
                }
                #expect(error?.nssName == "SSL_ERROR_UNRECOGNIZED_NAME_ALERT", "\(String(describing: error))")
                await listener.close()
                await setup.server.value
            }
        }
    }
}
