import AsyncNSS

/// An AsyncNSS server on 127.0.0.1 inside the benchmark process, with a
/// self-signed identity, and a client configuration that trusts exactly it.
///
/// Each accepted connection closes as soon as it arrives (`.closeAtOnce`,
/// for handshakes) or reads until the client closes (`.drain`, for writes).
final class LoopbackServer: Sendable {
    enum Behaviour: Sendable { case closeAtOnce, drain }

    let listener: TLSListener
    let client: TLSConfiguration
    private let serving: Task<Void, Never>

    private init(listener: TLSListener, client: TLSConfiguration, serving: Task<Void, Never>) {
        self.listener = listener
        self.client = client
        self.serving = serving
    }

    static func start(_ behaviour: Behaviour, version: TLSVersion = .tls13) async throws -> LoopbackServer {
        let identity = try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])
        var server = TLSConfiguration.makeServerConfiguration(identity: identity)
        server.minimumVersion = version
        server.maximumVersion = version
        let listener = try await TLSListener.bind(host: "127.0.0.1", port: 0, configuration: server)
        var client = TLSConfiguration.makeClientConfiguration(trust: .certificates(identity.certificateChain))
        client.serverName = "localhost"
        client.minimumVersion = version
        client.maximumVersion = version
        let serving = Task {
            await withDiscardingTaskGroup { group in
                do {
                    for try await connection in listener {
                        group.addTask { await serve(connection, behaviour) }
                    }
                } catch {}
            }
        }
        return LoopbackServer(listener: listener, client: client, serving: serving)
    }

    /// Connects a client and completes its handshake.
    func connect() async throws -> TLSConnection {
        try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: client)
    }

    func stop() async {
        await listener.close()
        serving.cancel()
        await serving.value
    }

    private static func serve(_ connection: TLSConnection, _ behaviour: Behaviour) async {
        switch behaviour {
        case .closeAtOnce:
            await connection.close()
        case .drain:
            _ = try? await connection.executeThenClose { connection in
                for try await _ in connection.inbound {}
            }
        }
    }
}
