/// A server's identities by SNI name: exact names and `*.example.com`
/// wildcards (one label), matched without regard to case.
struct ServerNameIdentities: Sendable {
    private var exact: [String: TLSIdentity] = [:]
    /// `*.example.com` entries, keyed by `example.com`.
    private var wildcards: [String: TLSIdentity] = [:]

    init(_ identities: [String: TLSIdentity]) {
        for (name, identity) in identities {
            let lowered = name.lowercased()
            if lowered.hasPrefix("*.") {
                wildcards[String(lowered.dropFirst(2))] = identity
            } else {
                exact[lowered] = identity
            }
        }
    }

    var isEmpty: Bool { exact.isEmpty && wildcards.isEmpty }

    /// The identity for `name`, if one matches.
    func identity(for name: String) -> TLSIdentity? {
        let lowered = name.lowercased()
        if let identity = exact[lowered] { return identity }
        guard let dot = lowered.firstIndex(of: ".") else { return nil }
        return wildcards[String(lowered[lowered.index(after: dot)...])]
    }
}
