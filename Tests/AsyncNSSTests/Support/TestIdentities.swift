import AsyncNSS

/// Identities and configurations shared by the integration tests.
enum TestIdentities {
    /// A self-signed identity for localhost, 127.0.0.1 and ::1, made once.
    static func localhost() async throws -> TLSIdentity {
        try await cache.value
    }

    static func serverConfiguration(min: TLSVersion = .tls12, max: TLSVersion = .tls13) async throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(identity: try await localhost())
        configuration.minimumVersion = min
        configuration.maximumVersion = max
        return configuration
    }

    /// A client that trusts exactly the test identity.
    static func clientConfiguration(min: TLSVersion = .tls12, max: TLSVersion = .tls13) async throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration(trust: .certificates(try await localhost().certificateChain))
        configuration.minimumVersion = min
        configuration.maximumVersion = max
        return configuration
    }

    private static let cache = MadeOnce { try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1", "::1"]) }

    /// Forgets the identity; needed after `NSSRuntime.shutdown()` released it.
    static func reset() async { await cache.reset() }
}
