import AsyncNSS
import PeerKit

/// AsyncNSS as a ``PeerStack``: `TLSListener` and `TLSConnection`.
enum AsyncNSSStack: PeerStack {
    static let name = "asyncnss-peer"

    static func serve(_ options: ServerOptions) async throws {
        let identity = try await TLSIdentity.pem(certificateChainFile: options.cert, privateKeyFile: options.key)
        var configuration = TLSConfiguration.makeServerConfiguration(identity: identity)
        // The scale test holds 10,000 idle connections plus the active ones;
        // the default limit (10,000) would leave the active ones unaccepted.
        configuration.maximumConnections = 1_000_000
        let listener = try await TLSListener.bind(
            host: options.host, port: options.port,
            configuration: configuration, backlog: 4096)
        announceListening(name, listener.localAddress)
        let mode = options.mode
        await withDiscardingTaskGroup { group in
            do {
                for try await connection in listener {
                    // As the README advises: the handler runs on its connection's loop.
                    group.addTask(executorPreference: connection.executor) {
                        try? await connection.executeThenClose { connection in
                            switch mode {
                            case .echo: try await echo(connection)
                            case .http: try await helloHTTP(connection)
                            }
                        }
                    }
                }
            } catch {
                print("\(name): \(error)")
            }
        }
    }

    static func makeTarget(_ options: ClientOptions) async throws -> AsyncNSSTarget {
        var configuration = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: options.ca))
        configuration.serverName = options.serverName
        // A load client waits as long as the server takes: with thousands of
        // connections the default 10 s is not enough, and how long opening
        // them takes is measured and reported instead.
        configuration.handshakeTimeout = .seconds(600)
        return AsyncNSSTarget(host: options.host, port: options.port, configuration: configuration)
    }

    /// Writes back every chunk until the peer closes.
    static func echo(_ connection: TLSConnection) async throws {
        for try await chunk in connection.inbound {
            try await connection.write(chunk)
        }
    }

    /// Answers each request head with the hello page until the peer closes.
    static func helloHTTP(_ connection: TLSConnection) async throws {
        var pending: [UInt8] = []
        for try await chunk in connection.inbound {
            pending += chunk
            for answer in HTTPHello.takeRequests(from: &pending) {
                switch answer {
                case .respond:
                    try await connection.write(HTTPHello.response)
                case .respondAndClose:
                    try await connection.write(HTTPHello.closingResponse)
                    return
                }
            }
        }
    }
}
