import Synchronization

/// Keeps client sessions apart by how they were authenticated.
///
/// NSS has one client session cache per process, keyed by the server's
/// address, port and name. Without more, a connection made with one trust or
/// client identity could resume a session that another configuration
/// authenticated, skipping its certificate checks. Every client socket gets a
/// peer ID (`SSL_SetSockPeerID`) naming its trust, its identity, its
/// versions and its revocation policy, so only a configuration that would have made the same checks
/// resumes the session.
enum SessionCacheKey {
    /// Serial numbers for trust anchors and identities: unlike object
    /// addresses, they are never reused within the process.
    private static let serials = Atomic<UInt64>(0)

    static func nextSerial() -> UInt64 {
        serials.wrappingAdd(1, ordering: .relaxed).newValue
    }

    static func peerID(for configuration: TLSConfiguration) -> String {
        let trust: String
        switch configuration.trust.source {
        case .systemRoots: trust = "system"
        case .anchors(let anchors): trust = "anchors-\(anchors.serial)"
        case .database(let directory): trust = "db-\(directory)"
        case .insecureNoVerification: trust = "insecure"
        }
        let identity = configuration.identity.map { "identity-\($0.material.serial)" } ?? "anonymous"
        let versions = "\(configuration.minimumVersion.wireValue)-\(configuration.maximumVersion.wireValue)"
        return "asyncnss;\(trust);\(identity);\(versions);\(revocation(configuration.revocation))"
    }

    /// A session made without a revocation check must not resume under a
    /// policy that requires one.
    private static func revocation(_ policy: RevocationPolicy) -> String {
        switch policy.mode {
        case .off: "rev-off"
        case .stapledOCSP: "rev-staple"
        case .ocsp: "rev-ocsp"
        case .crl(let lists): "rev-crl-\(lists.serial)"
        }
    }
}
