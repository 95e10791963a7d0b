internal import CNSS
public import CoreMetrics
public import Logging

/// A TLS server socket: an `AsyncSequence` of connections whose handshake succeeded.
///
/// ```swift
/// let listener = try await TLSListener.bind(port: 8443, configuration: .makeServerConfiguration(identity: identity))
/// await listener.serve { connection in
///     try await handle(connection)
/// }
/// ```
///
/// ``serve(_:)`` runs each handler on its connection's event loop. Iterating
/// works too; then run each handler with
/// `group.addTask(executorPreference: connection.executor)`.
///
/// Accepting and handshaking run in the background as soon as the listener is
/// bound, many handshakes at once. A connection whose handshake fails, times
/// out or is reset is logged and closed; it never ends the sequence. The
/// sequence ends when ``close()`` is called. Cancelling the task that iterates
/// closes the listener and throws `CancellationError`.
public actor TLSListener: AsyncSequence {
    public typealias Element = TLSConnection

    /// The address the listener is bound to, `127.0.0.1:8443` or `[::1]:8443`.
    public nonisolated let localAddress: String
    /// The bound port; the one the system chose when binding port 0.
    public nonisolated let port: Int

    let listeningSocket: SocketHandle
    private let setups: ServerSetups
    /// The runtime the listener runs on.
    let services: RuntimeServices
    private let connections: AsyncStream<TLSConnection>
    private let acceptLoop: Task<Void, Never>
    private let live: LiveConnections
    /// Where ``serve(_:)`` has connections go.
    let delivery: HandlerDelivery
    /// The listener's own logger (accept errors, reloads).
    let logger: Logger

    private init(listeningSocket: SocketHandle, setups: ServerSetups, services: RuntimeServices, address: NetworkAddress, connections: AsyncStream<TLSConnection>, acceptLoop: Task<Void, Never>, live: LiveConnections, delivery: HandlerDelivery, logger: Logger) {
        self.live = live
        self.delivery = delivery
        self.logger = logger
        self.listeningSocket = listeningSocket
        self.setups = setups
        self.services = services
        self.localAddress = address.description
        self.port = Int(address.port)
        self.connections = connections
        self.acceptLoop = acceptLoop
    }

    deinit {
        acceptLoop.cancel()
    }

    /// Binds to `host:port` (IPv4 or IPv6; port 0 picks a free port) and
    /// starts accepting.
    ///
    /// - Parameters:
    ///   - host: The address to listen on, IPv4 or IPv6 (a name is resolved).
    ///   - port: The port; 0 picks a free one (read it from ``port``).
    ///   - configuration: A server configuration, with an identity.
    ///   - backlog: The kernel's queue of connections not yet accepted.
    ///   - logger: Where accept errors go, and the connections' lines (handshakes
    ///     at debug, failures at info) unless ``TLSConfiguration/logger`` is set.
    ///     `nil`: the configuration's logger, else `Logger(label: "AsyncNSS.TLSListener")`.
    ///   - metrics: Where the listener's swift-metrics go (the names are listed
    ///     in the README); `nil` uses `MetricsSystem.factory`.
    public static func bind(
        host: String = "127.0.0.1",
        port: Int,
        configuration: TLSConfiguration,
        backlog: Int = 1024,
        logger: Logger? = nil,
        metrics: (any MetricsFactory)? = nil
    ) async throws -> TLSListener {
        let operation = "listening on \(host):\(port)"
        let (port, services) = try configuration.prepare(port: port, as: .server, operation)
        guard let address = try await NetworkAddress.resolve(host, port: port, services: services).first else {
            throw TLSError(kind: .nameResolution, operation: operation, message: "no addresses")
        }

        let setup = try await ServerSetup.make(configuration, services: services, operation: operation)
        let listeningSocket: SocketHandle
        let bound: NetworkAddress
        do {
            (listeningSocket, bound) = try ListeningSocket.open(address, backlog: backlog, services: services, operation: operation)
        } catch {
            await setup.close()
            throw error
        }
        return start(listeningSocket, bound: bound, setup: setup, configuration: configuration, services: services, logger: logger, metrics: metrics)
    }

    /// Starts accepting on the listening socket that the parent process
    /// handed this worker (see ``WorkerLauncher``): the worker processes
    /// of a multi-process server all accept on it.
    ///
    /// Start the runtime with ``NSSRuntime/ServerSessionCache/inheritedFromParent``
    /// first, so that the workers share one session cache.
    public static func inheritedFromParent(
        configuration: TLSConfiguration,
        logger: Logger? = nil,
        metrics: (any MetricsFactory)? = nil
    ) async throws -> TLSListener {
        let operation = "listening on the socket inherited from the parent process"
        try configuration.validate(as: .server, operation)
        let services = try Runtime.shared.services()
        guard WorkerEnvironment.isWorker else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "this process was not started by a WorkerLauncher")
        }
        guard services.serverSessionCache == .inheritedFromParent else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "start the runtime with NSSRuntime.Options.serverSessionCache = .inheritedFromParent first, or this worker's sessions resume nowhere else")
        }
        guard !configuration.earlyData.isOn else {
            // NSS's anti-replay state lives in each process: a ClientHello
            // replayed to another worker would be accepted there.
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "early data is not accepted by workers that share a port: each process keeps its own anti-replay state, so a replay sent to another worker would be accepted")
        }
        let setup = try await ServerSetup.make(configuration, services: services, operation: operation)
        let listeningSocket: SocketHandle
        let bound: NetworkAddress
        do {
            (listeningSocket, bound) = try ListeningSocket.inherit(WorkerEnvironment.listeningDescriptor, services: services, operation: operation)
        } catch {
            await setup.close()
            throw error
        }
        return start(listeningSocket, bound: bound, setup: setup, configuration: configuration, services: services, logger: logger, metrics: metrics)
    }

    private static func start(
        _ listeningSocket: SocketHandle,
        bound: NetworkAddress,
        setup: ServerSetup,
        configuration: TLSConfiguration,
        services: RuntimeServices,
        logger: Logger?,
        metrics: (any MetricsFactory)?
    ) -> TLSListener {
        let setups = ServerSetups(setup)

        let (stream, continuation) = AsyncStream.makeStream(of: TLSConnection.self)
        let live = LiveConnections()
        let delivery = HandlerDelivery()
        let logger = logger ?? configuration.logger ?? Logger(label: "AsyncNSS.TLSListener")
        configuration.keyLog?.announce(to: logger)
        let limiter = ConnectionLimiter(limit: configuration.maximumConnections)
        let metrics = ConnectionMetrics(factory: metrics ?? MetricsSystem.factory, role: .server)
        let acceptor = Acceptor(
            listeningSocket: listeningSocket,
            setups: setups,
            services: services,
            logger: logger,
            output: continuation,
            delivery: delivery,
            limiter: limiter,
            live: live,
            reserve: ReserveDescriptor(),
            metrics: metrics,
            ends: AcceptedConnectionEnds(metrics: metrics, limiter: limiter, live: live)
        )
        // Accepting runs on the listening socket's loop, where its waits are
        // polled; each handshake then starts on the new connection's loop.
        let isolation = LoopIsolation(loop: listeningSocket.pollLoop)
        let loop = Task(executorPreference: listeningSocket.pollLoop) { await acceptor.run(isolatedTo: isolation) }
        continuation.onTermination = { _ in loop.cancel() }
        return TLSListener(listeningSocket: listeningSocket, setups: setups, services: services, address: bound, connections: stream, acceptLoop: loop, live: live, delivery: delivery, logger: logger)
    }

    /// Stops accepting, abandons handshakes in progress and closes the
    /// listening socket. Connections already delivered stay open. Idempotent.
    public func close() async {
        acceptLoop.cancel()
        await listeningSocket.close()
        await acceptLoop.value
        await setups.closeAll()
    }

    /// Applies `configuration` to the handshakes that start from now on: a new
    /// identity (certificate files changed on disk, say), trust, versions,
    /// ALPN, SNI identities. Connections already accepted keep what they
    /// negotiated. The swap is atomic: each handshake sees the old
    /// configuration or the new one, never a mix. ``TLSConfiguration/maximumConnections``
    /// stays as it was at bind.
    ///
    /// A client may still resume a session made before the reload; NSS's
    /// server session cache and ticket keys belong to the process. A resumed
    /// session keeps the identity it was made with, until
    /// ``NSSRuntime/Options/sessionLifetime`` ends it.
    ///
    /// - Throws: the error of an invalid configuration or identity; the
    ///   listener then goes on with the configuration it had.
    public func reload(_ configuration: TLSConfiguration) async throws {
        let operation = "reloading the listener on \(localAddress)"
        guard listeningSocket.isOpen else {
            throw TLSError(kind: .closed, operation: operation, message: "the listener is closed")
        }
        try configuration.validate(as: .server, operation)
        let setup = try await ServerSetup.make(configuration, services: services, operation: operation)
        configuration.keyLog?.announce(to: logger)
        await setups.replace(with: setup)
    }

    /// Whether the listener still accepts (it was neither closed nor shut down).
    var isAccepting: Bool { listeningSocket.isOpen }

    /// The connections this listener delivered that are still open.
    public nonisolated var openConnectionCount: Int { live.count }

    /// Shuts down gracefully: stops accepting (like ``close()``), gives the
    /// connections already delivered up to `gracePeriod` to end on their
    /// own, then closes the rest with close_notify. Returns when all are closed.
    public func shutdown(gracePeriod: Duration) async {
        await close()
        let deadline = ContinuousClock.now + gracePeriod
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [live] in await live.waitUntilEmpty() }
            group.addTask { try? await Task.sleep(until: deadline) }
            await group.next()
            group.cancelAll()
        }
        await withDiscardingTaskGroup { group in
            for connection in live.all() {
                group.addTask { await connection.close() }
            }
        }
    }

    public nonisolated func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: connections.makeAsyncIterator(), listener: self)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<TLSConnection>.AsyncIterator
        let listener: TLSListener

        public mutating func next() async throws -> TLSConnection? {
            if let connection = await base.next(isolation: #isolation) { return connection }
            if Task.isCancelled {
                await listener.close()
                throw CancellationError()
            }
            return nil
        }
    }
}

/// The SSL "model" socket whose configuration every accepted socket copies
/// (`SSL_ImportFD(model, fd)`), as NSS's selfserv does.
enum ServerModelSocket {
    static func make(_ configuration: TLSConfiguration, services: RuntimeServices, operation: String) throws -> SocketHandle {
        guard let tcp = PR_NewTCPSocket() else { throw TLSError.fromLastNSSError(operation) }
        TCPSocketOptions.setCloseOnExec(tcp)
        guard let fd = SSL_ImportFD(nil, tcp) else {
            let error = TLSError.fromLastNSSError(operation)
            PR_Close(tcp)
            throw error
        }
        let model = SocketHandle(fd, services: services)
        try model.withFD(operation) { fd in
            try SSLSocketSetup.apply(configuration, to: fd, as: .server, serverName: nil, operation: operation)
        }
        return model
    }
}

/// The plain TCP socket a listener accepts on.
enum ListeningSocket {
    static func open(_ address: NetworkAddress, backlog: Int, services: RuntimeServices, operation: String) throws -> (SocketHandle, NetworkAddress) {
        let fd = try TCPSocketOptions.openSocket(family: address.family, operation)
        let socket = SocketHandle(fd, services: services)
        let bound = try socket.withFD(operation) { fd -> NetworkAddress in
            try TCPSocketOptions.setReuseAddress(fd)
            var local = address.raw
            guard PR_Bind(fd, &local) == PR_SUCCESS else { throw TLSError.fromLastNSSError(operation) }
            guard PR_Listen(fd, Int32(clamping: backlog)) == PR_SUCCESS else { throw TLSError.fromLastNSSError(operation) }
            try TCPSocketOptions.setNonblocking(fd)
            var name = PRNetAddr()
            guard PR_GetSockName(fd, &name) == PR_SUCCESS else { throw TLSError.fromLastNSSError(operation) }
            return NetworkAddress(raw: name)
        }
        return (socket, bound)
    }

    /// Takes over the listening socket `descriptor`, inherited from the
    /// parent process.
    static func inherit(_ descriptor: Int32, services: RuntimeServices, operation: String) throws -> (SocketHandle, NetworkAddress) {
        guard let fd = PR_ImportTCPSocket(PROsfd(descriptor)) else { throw TLSError.fromLastNSSError(operation) }
        TCPSocketOptions.setCloseOnExec(fd)
        let socket = SocketHandle(fd, services: services)
        let bound = try socket.withFD(operation) { fd -> NetworkAddress in
            try TCPSocketOptions.setNonblocking(fd)
            var name = PRNetAddr()
            guard PR_GetSockName(fd, &name) == PR_SUCCESS else { throw TLSError.fromLastNSSError(operation) }
            return NetworkAddress(raw: name)
        }
        return (socket, bound)
    }
}
