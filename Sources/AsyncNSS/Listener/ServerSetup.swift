import Synchronization

/// What a listener needs to import and configure an accepted socket: the
/// model socket built from a configuration and the prepared trust. ``TLSListener/reload(_:)`` replaces it as a whole.
struct ServerSetup: Sendable {
    let configuration: TLSConfiguration
    let model: SocketHandle
    let verification: ConnectionCallbacks.Verification
    /// What every connection of this setup consults after its handshake;
    /// made once here, not per accepted connection.
    let settings: ConnectionSettings

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

/// The current ``ServerSetup`` of a listener, and the ones it replaced.
///
/// A replaced setup stays open until the listener closes: an accept that
/// took it just before the swap may still be importing from its model.
final class ServerSetups: Sendable {
    private let state: Mutex<(current: ServerSetup, retired: [ServerSetup])>

    init(_ setup: ServerSetup) { state = Mutex((setup, [])) }

    var current: ServerSetup { state.withLock { $0.current } }

    func replace(with setup: ServerSetup) {
        state.withLock { state in
            state.retired.append(state.current)
            state.current = setup
        }
    }

    func closeAll() async {
        let all = state.withLock { [$0.current] + $0.retired }
        for setup in all { await setup.close() }
    }
}
