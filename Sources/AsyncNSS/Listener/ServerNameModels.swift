internal import CNSS

/// One model socket per SNI name of a listener, so that a connection can be
/// switched to that name's identity with `SSL_ReconfigFD`.
final class ServerNameModels: Sendable {
    private let exact: [String: SocketHandle]
    /// `*.example.com` entries, keyed by `example.com`.
    private let wildcards: [String: SocketHandle]

    init(_ models: [String: SocketHandle]) {
        var exact: [String: SocketHandle] = [:]
        var wildcards: [String: SocketHandle] = [:]
        for (name, model) in models {
            let lowered = name.lowercased()
            if lowered.hasPrefix("*.") {
                wildcards[String(lowered.dropFirst(2))] = model
            } else {
                exact[lowered] = model
            }
        }
        self.exact = exact
        self.wildcards = wildcards
    }

    /// Builds the models for `configuration.serverNameIdentities`.
    static func make(_ configuration: TLSConfiguration, services: RuntimeServices, operation: String) throws -> ServerNameModels? {
        guard !configuration.serverNameIdentities.isEmpty else { return nil }
        var models: [String: SocketHandle] = [:]
        for (name, identity) in configuration.serverNameIdentities {
            var named = configuration
            named.identity = identity
            models[name] = try ServerModelSocket.make(named, services: services, operation: "\(operation): identity for \(name)")
        }
        return ServerNameModels(models)
    }

    /// The model for `name`, if one matches.
    func model(for name: String) -> SocketHandle? {
        let lowered = name.lowercased()
        if let model = exact[lowered] { return model }
        guard let dot = lowered.firstIndex(of: ".") else { return nil }
        return wildcards[String(lowered[lowered.index(after: dot)...])]
    }

    func close() async {
        for model in exact.values { await model.close() }
        for model in wildcards.values { await model.close() }
    }
}
