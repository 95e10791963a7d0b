import Synchronization

/// What a listener needs to import and configure an accepted socket: the
/// model socket built from a configuration and the prepared trust. ``TLSListener/reload(_:)`` replaces it as a whole.
///
/// A class, so that the handshake of each accepted connection holds a
/// reference, not a copy of the configuration, in its async frame (which a
/// connection served by ``TLSListener/serve(_:)`` keeps while it lives).
final class ServerSetup: Sendable {
    let configuration: TLSConfiguration
    let model: SocketHandle
    let verification: ConnectionCallbacks.Verification
    /// What every connection of this setup consults after its handshake;
    /// made once here, not per accepted connection.
    let settings: ConnectionSettings
    /// Whether connections start with a PROXY protocol header; a flag of its
    /// own, so that the handshake's frame keeps no copy of the configuration
    /// for looking.
    let readsProxyHeader: Bool

    private init(configuration: TLSConfiguration, model: SocketHandle, verification: ConnectionCallbacks.Verification, settings: ConnectionSettings) {
        self.configuration = configuration
        self.model = model
        self.verification = verification
        self.settings = settings
        self.readsProxyHeader = configuration.proxyProtocol == .required
    }

    /// Builds the model socket and prepares the trust for `configuration`.
    static func make(_ configuration: TLSConfiguration, services: RuntimeServices, operation: String) async throws -> ServerSetup {
        let verification = try await TrustPreparation.verification(for: configuration, as: .server, services: services)
        let model = try ServerModelSocket.make(configuration, services: services, operation: operation)
        return ServerSetup(configuration: configuration, model: model, verification: verification, settings: ConnectionSettings(configuration, role: .server))
    }

    func close() async {
        await model.close()
    }
}

/// The current ``ServerSetup`` of a listener, and the replaced ones that an
/// import still uses.
///
/// Each setup owns a model socket (a descriptor) and its identity, so a
/// replaced setup is closed as soon as no import uses it any more: at once if
/// none does, else by the last import that took it before the swap. (Keeping
/// every replaced setup until the listener closed cost a descriptor and an
/// identity per reload.)
final class ServerSetups: Sendable {
    private struct State {
        var current: ServerSetup
        /// Numbers `current`, so that imports can be counted per setup.
        var generation = 0
        /// Imports in progress, by the generation of the setup they took.
        var imports: [Int: Int] = [:]
        /// Replaced setups whose imports have not all finished.
        var retired: [Int: ServerSetup] = [:]
        /// After ``closeAll()``, a setup handed to ``replace(with:)`` is closed at once.
        var closed = false
    }

    private let state: Mutex<State>

    init(_ setup: ServerSetup) { state = Mutex(State(current: setup)) }

    var current: ServerSetup { state.withLock { $0.current } }

    /// How many replaced setups are still open, waiting for an import.
    var retiredCount: Int { state.withLock { $0.retired.count } }

    /// The current setup, kept open until it is handed to ``finish(_:)``.
    struct Lease: Sendable {
        let setup: ServerSetup
        fileprivate let generation: Int
    }

    /// Takes the current setup for an import: it stays open, even if
    /// ``replace(with:)`` swaps it, until the lease goes to ``finish(_:)``.
    func take() -> Lease {
        state.withLock { state in
            state.imports[state.generation, default: 0] += 1
            return Lease(setup: state.current, generation: state.generation)
        }
    }

    /// Ends a lease; closes its setup if it was replaced and this was its last lease.
    func finish(_ lease: Lease) async {
        let finished = state.withLock { state -> ServerSetup? in
            let remaining = (state.imports[lease.generation] ?? 1) - 1
            guard remaining == 0 else {
                state.imports[lease.generation] = remaining
                return nil
            }
            state.imports[lease.generation] = nil
            return state.retired.removeValue(forKey: lease.generation)
        }
        await finished?.close()
    }

    /// Makes `setup` the current one. The one it replaces is closed now if no
    /// import uses it, else when the last one finishes.
    func replace(with setup: ServerSetup) async {
        let unused = state.withLock { state -> ServerSetup? in
            if state.closed { return setup }
            let replaced = state.current
            let generation = state.generation
            state.current = setup
            state.generation += 1
            guard state.imports[generation] == nil else {
                state.retired[generation] = replaced
                return nil
            }
            return replaced
        }
        await unused?.close()
    }

    /// Closes the current setup and every replaced one still open. Imports
    /// still using one then fail with ``TLSError/Kind/closed``.
    func closeAll() async {
        let all = state.withLock { state -> [ServerSetup] in
            state.closed = true
            let all = [state.current] + state.retired.values
            state.retired.removeAll()
            return all
        }
        for setup in all { await setup.close() }
    }
}
