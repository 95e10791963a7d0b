internal import CNSS
import Logging

/// The accept loop of a ``TLSListener``: accepts, imports each socket into
/// NSS and runs its handshake in a child task, and hands connections that
/// completed their handshake to the listener's sequence.
///
/// A class: every connection's task captures it. As a struct its eleven
/// fields, one of them of a resilient type (the stream's continuation), were
/// copied one by one, through runtime calls, into each of those tasks.
final class Acceptor: Sendable {
    let listeningSocket: SocketHandle
    let setups: ServerSetups
    let services: RuntimeServices
    let logger: Logger
    let output: AsyncStream<TLSConnection>.Continuation
    /// Where connections go instead of `output` once ``TLSListener/serve(_:)`` runs.
    let delivery: HandlerDelivery
    let limiter: ConnectionLimiter
    let live: LiveConnections
    let reserve: ReserveDescriptor
    let metrics: ConnectionMetrics
    /// Told when each connection ends: counts it out of `metrics`, `limiter` and `live`.
    let ends: AcceptedConnectionEnds

    init(
        listeningSocket: SocketHandle,
        setups: ServerSetups,
        services: RuntimeServices,
        logger: Logger,
        output: AsyncStream<TLSConnection>.Continuation,
        delivery: HandlerDelivery,
        limiter: ConnectionLimiter,
        live: LiveConnections,
        reserve: ReserveDescriptor,
        metrics: ConnectionMetrics,
        ends: AcceptedConnectionEnds
    ) {
        self.listeningSocket = listeningSocket
        self.setups = setups
        self.services = services
        self.logger = logger
        self.output = output
        self.delivery = delivery
        self.limiter = limiter
        self.live = live
        self.reserve = reserve
        self.metrics = metrics
        self.ends = ends
    }

    /// How long to pause, on the poll thread (``SocketHandle/pause(for:)``),
    /// when the process is out of file descriptors.
    static let exhaustionBackoff: Duration = .milliseconds(100)

    /// The pause after the `n`th accept failure in a row of any other kind
    /// (a listening socket shut down under the listener, say): 5 ms, doubling
    /// up to a second, so that an error that repeats does not spin the loop.
    static func failureBackoff(afterFailures count: Int) -> Duration {
        let doublings = min(max(count - 1, 0), 8)
        return min(.milliseconds(5 << doublings), .seconds(1))
    }

    private enum AcceptStep {
        case accepted(PollSocket, NetworkAddress)
        case wouldBlock
        case exhausted(TLSError)
        case failed(TLSError)
    }

    /// Accepts until cancelled or the listening socket closes, isolated to
    /// the listening socket's loop, so that each wait for a connection costs
    /// one job there and no hop (``LoopIsolation``).
    func run(isolatedTo isolation: isolated LoopIsolation) async {
        await withDiscardingTaskGroup { group in
            // Naming the isolated parameter makes this closure isolated to it
            // (as in `withIsolatedCancellationHandler`). Without it the body
            // is nonisolated, and each wait in it left the loop's executor
            // and came back: nine jobs per wait instead of one.
            _ = isolation
            var failuresInARow = 0
            accepting: while !Task.isCancelled {
                await limiter.waitForRoom()
                if Task.isCancelled { break }
                // Out of descriptors a moment ago: accept only once the
                // reserve is back and a slot beside it is free, or the table
                // would be full again.
                guard reserve.reclaim() else {
                    guard await listeningSocket.pause(for: Self.exhaustionBackoff) == .elapsed else { break accepting }
                    continue
                }
                switch accept() {
                case .accepted(let socket, let peer):
                    failuresInARow = 0
                    limiter.admit()
                    // The connection's loop runs its handshake, so every
                    // wait of the handshake continues where it was polled.
                    // Under `serve`, the same task then runs the handler,
                    // once the handshake's frames are gone: an idle
                    // connection keeps only the handler's.
                    let loop = services.pollGroup.assign()
                    let started = delivery.spawn(on: loop) { [self] driver, id in
                        await serve(socket.fd, peer: peer, driver: driver, servedAs: id)
                    }
                    if !started {
                        // The child task starts isolated to the driver, as a serve task does.
                        let driver = HandshakeDriver.withTaskBody(on: loop) { [self] driver in
                            guard let connection = await handshake(socket.fd, peer: peer, driver: driver) else { return }
                            if delivery.deliver(connection, on: loop) { return }
                            if case .terminated = output.yield(connection) {
                                await connection.close()
                            }
                        }
                        group.addTask(executorPreference: loop, operation: driver.runTaskBody)
                    }
                case .wouldBlock:
                    guard case .ready = await listeningSocket.wait(for: .read) else {
                        group.cancelAll()
                        return
                    }
                case .exhausted(let error):
                    // The slot first: the table is full until it is given back.
                    reserve.release()
                    logger.warning("accept failed, backing off", metadata: ["error": "\(error)", "backoff": "\(Self.exhaustionBackoff)"])
                    guard await listeningSocket.pause(for: Self.exhaustionBackoff) == .elapsed else { break accepting }
                case .failed(let error):
                    if !listeningSocket.isOpen { group.cancelAll(); return }
                    failuresInARow += 1
                    let backoff = Self.failureBackoff(afterFailures: failuresInARow)
                    logger.warning("accept failed, backing off", metadata: ["error": "\(error)", "backoff": "\(backoff)"])
                    guard await listeningSocket.pause(for: backoff) == .elapsed else { break accepting }
                }
            }
            group.cancelAll()
        }
        // The handshakes that `serve` started are not in the group.
        delivery.cancelHandshakes()
        await delivery.waitForHandshakes()
        reserve.release()
        output.finish()
    }

    private func accept() -> AcceptStep {
        let operation = "accepting a connection"
        do {
            switch try listeningSocket.acceptSome(operation: operation) {
            case .accepted(let socket, let peer):
                return .accepted(socket, peer)
            case .failed(let code) where code == NSSErrors.wouldBlock:
                return .wouldBlock
            case .failed(let code):
                let error = TLSError.fromNSSCode(code, operation)
                if [NSSErrors.fileTableFull, NSSErrors.systemFileTableFull, NSSErrors.insufficientResources].contains(code) {
                    return .exhausted(error)
                }
                return .failed(error)
            }
        } catch let error as TLSError {
            return .failed(error)
        } catch {
            return .failed(TLSError(kind: .closed, operation: operation, message: "\(error)"))
        }
    }

    /// Runs the handshake of an accepted socket and then the handler of
    /// task `id` of ``HandlerDelivery/spawn(on:_:)``, isolated to `driver`,
    /// whose executor is the connection's: no hop between the two, and none
    /// when the handler calls the connection.
    private func serve(_ tcp: UnsafeMutablePointer<PRFileDesc>, peer: NetworkAddress, driver: isolated HandshakeDriver, servedAs id: Int) async {
        guard let connection = await handshake(tcp, peer: peer, driver: driver) else { return }
        await delivery.runHandler(of: connection, afterHandshakeOf: id)
    }

    /// Runs the handshake of an accepted socket, isolated to its `driver`
    /// (on its loop), and returns the connection; nil when the handshake
    /// failed (logged) or was cancelled. ``ends`` gives its limiter slot back
    /// when the connection ends, however it ends.
    private func handshake(_ tcp: UnsafeMutablePointer<PRFileDesc>, peer: NetworkAddress, driver: isolated HandshakeDriver) async -> TLSConnection? {
        let loop = driver.loop
        // A lease keeps the setup's model socket open until the import is
        // done, even if a reload replaces the setup meanwhile.
        let lease = setups.take()
        let setup = lease.setup
        // The handshake timeout counts from the accept: reading the PROXY
        // header and the ClientHello for its SNI name (if any) is part of it.
        let started = ContinuousClock.now
        let deadline = started + setup.configuration.handshakeTimeout
        // Behind a proxy, its header comes first and says who the peer is.
        var proxied: ProxiedSocket?
        if setup.readsProxyHeader {
            proxied = await readProxyHeader(tcp, proxy: peer.description, setup: setup, loop: loop, deadline: deadline)
            if proxied == nil {
                await setups.finish(lease)
                limiter.release()
                return nil
            }
        }
        let peerText = proxied?.peerText ?? peer.description
        let socket: SocketHandle
        let callbacks = ConnectionCallbacks(isServer: true, verification: setup.verification, serverName: nil, identity: nil, settings: setup.settings, metrics: metrics, logger: setup.configuration.logger ?? logger, peer: peerText, services: services, endObserver: ends)
        metrics.connectionStarted()
        let imported: Result<SocketHandle, any Error>
        do {
            if let proxied {
                imported = .success(try await importReadAhead(proxied.socket, setup: setup, callbacks: callbacks, deadline: deadline, operation: "handshake with \(peerText)"))
            } else if ServerNamePreselection.isNeeded(setup.settings) {
                imported = .success(try await importPreselecting(tcp, setup: setup, callbacks: callbacks, loop: loop, deadline: deadline, operation: "handshake with \(peerText)"))
            } else {
                imported = .success(try importFromModel(tcp, setup: setup, callbacks: callbacks, loop: loop, operation: "handshake with \(peerText)"))
            }
        } catch {
            imported = .failure(error)
        }
        await setups.finish(lease)
        do {
            socket = try imported.get()
        } catch {
            callbacks.connectionEnded()
            if error is CancellationError { return nil }
            callbacks.logger.debug("connection setup failed", metadata: ["error": "\(error)"])
            return nil
        }
        do {
            if setup.settings.acceptsEarlyData {
                return try await handshakeAcceptingEarlyData(socket, callbacks: callbacks, peer: peerText, proxied: proxied, timeout: setup.configuration.handshakeTimeout, startedAt: started, driver: driver)
            }
            let event = try await driver.run(socket, callbacks: callbacks, peer: peerText, timeout: setup.configuration.handshakeTimeout, startedAt: started)
            let connection = ProxiedSocket.connection(socket: socket, callbacks: callbacks, remoteAddress: peerText, initialEvent: event, proxied: proxied)
            live.add(connection, callbacks: callbacks)
            if callbacks.logLevel <= .debug { connection.logger.debug("handshake completed") }
            return connection
        } catch {
            await socket.close()
            callbacks.connectionEnded()
            if error is CancellationError { return nil }
            callbacks.logger.info("handshake failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// The handshake of a listener that accepts early data: a connection
    /// whose client sent some is handed over as soon as it arrived, and a
    /// task of its own completes the handshake (``EarlyHandshake``).
    @inline(never)
    private func handshakeAcceptingEarlyData(_ socket: SocketHandle, callbacks: ConnectionCallbacks, peer: String, proxied: ProxiedSocket?, timeout: Duration, startedAt started: ContinuousClock.Instant, driver: isolated HandshakeDriver) async throws -> TLSConnection {
        let connection: TLSConnection
        switch try await driver.runAcceptingEarlyData(socket, callbacks: callbacks, peer: peer, timeout: timeout, startedAt: started) {
        case .completed(let event, let earlyData, let data):
            var early: EarlyHandshake?
            if !earlyData.isEmpty || !data.isEmpty {
                early = EarlyHandshake(firstData: earlyData)
                early?.finish(nil, then: data)
            }
            connection = ProxiedSocket.connection(socket: socket, callbacks: callbacks, remoteAddress: peer, initialEvent: event, proxied: proxied, early: early)
            if callbacks.logLevel <= .debug { connection.logger.debug("handshake completed") }
        case .earlyData(let chunks, let preliminary):
            let early = EarlyHandshake(firstData: chunks)
            connection = ProxiedSocket.connection(socket: socket, callbacks: callbacks, remoteAddress: peer, initialEvent: preliminary, proxied: proxied, early: early)
            let loop = driver.loop
            Task(executorPreference: loop) {
                await HandshakeDriver(loop: loop).finishAfterEarlyData(socket, callbacks: callbacks, peer: peer, timeout: timeout, startedAt: started, early: early)
            }
            if callbacks.logLevel <= .debug { connection.logger.debug("early data accepted; handing the connection over before the handshake completes", metadata: ["early-bytes": "\(early.byteCount)"]) }
        }
        live.add(connection, callbacks: callbacks)
        return connection
    }

    /// Gotchas 1 and 2: accepted sockets are blocking and inherit the model's
    /// callbacks; fix both right after import.
    ///
    /// A listener with per-name identities first reads the ClientHello
    /// (``importPreselecting(_:setup:callbacks:loop:deadline:operation:)``).
    /// Without them the import does not wait, and is not `async`: its frame
    /// would otherwise stay in the task of every connection that `serve` runs.
    private func importFromModel(_ tcp: UnsafeMutablePointer<PRFileDesc>, setup: ServerSetup, callbacks: ConnectionCallbacks, loop: PollLoop, operation: @autoclosure () -> String) throws -> SocketHandle {
        let fd = try ReadAheadLayer.pushThenImport(tcp, operation: operation()) { tcp in
            try setup.model.withFD(operation()) { model in SSL_ImportFD(model, tcp) }
        }
        return try prepareImported(SocketHandle(fd, services: services, loop: loop), callbacks: callbacks, operation: operation())
    }

    /// The import for a listener with per-name identities: it reads the
    /// ClientHello first (see ``ServerNamePreselection``), and for a name
    /// with an identity of its own sets the socket up from the configuration
    /// with that identity instead of from the model socket.
    ///
    /// Never inlined: its frame, which holds the chosen configuration across
    /// the wait, would otherwise grow the frame of every handshake.
    @inline(never)
    private func importPreselecting(_ tcp: UnsafeMutablePointer<PRFileDesc>, setup: ServerSetup, callbacks: ConnectionCallbacks, loop: PollLoop, deadline: ContinuousClock.Instant, operation: @autoclosure () -> String) async throws -> SocketHandle {
        let socket = try openReadAhead(tcp, loop: loop, operation: operation())
        return try await importReadAhead(socket, setup: setup, callbacks: callbacks, deadline: deadline, operation: operation())
    }

    /// Pushes the read-ahead layer onto `tcp` and makes it nonblocking; the
    /// returned handle owns the descriptor. On failure `tcp` is closed.
    private func openReadAhead(_ tcp: UnsafeMutablePointer<PRFileDesc>, loop: PollLoop, operation: @autoclosure () -> String) throws -> SocketHandle {
        do {
            try ReadAheadLayer.push(onto: tcp, operation: operation())
        } catch {
            PR_Close(tcp)
            throw error
        }
        // From here the handle owns the descriptor and closes it on any failure.
        let socket = SocketHandle(tcp, services: services, loop: loop)
        try socket.withFD(operation()) { fd in try TCPSocketOptions.setNonblocking(fd) }
        return socket
    }

    /// Reads the PROXY protocol header of an accepted socket. On failure it
    /// logs why, closes the socket and returns nil.
    @inline(never)
    private func readProxyHeader(_ tcp: UnsafeMutablePointer<PRFileDesc>, proxy: String, setup: ServerSetup, loop: PollLoop, deadline: ContinuousClock.Instant) async -> ProxiedSocket? {
        let operation = "reading the PROXY protocol header from \(proxy)"
        let socket: SocketHandle
        do {
            socket = try openReadAhead(tcp, loop: loop, operation: operation)
        } catch {
            (setup.configuration.logger ?? logger).info("PROXY protocol header not read", metadata: ["proxy": "\(proxy)", "error": "\(error)"])
            return nil
        }
        do {
            let header = try await ProxyHeaderReader.read(on: socket, deadline: deadline, operation: operation)
            return ProxiedSocket(socket: socket, header: header)
        } catch {
            await socket.close()
            if !(error is CancellationError) {
                (setup.configuration.logger ?? logger).info("PROXY protocol header refused; connection closed", metadata: ["proxy": "\(proxy)", "error": "\(error)"])
            }
            return nil
        }
    }

    /// Imports a socket whose read-ahead layer is pushed (and may hold bytes
    /// already): for a listener with per-name identities it reads the
    /// ClientHello first, then sets the socket up in place.
    ///
    /// Never inlined, for the reason ``importPreselecting(_:setup:callbacks:loop:deadline:operation:)``
    /// is not: inlined into the handshake, its frame doubled the frame that
    /// every connection's task keeps (4,784 bytes against 2,320).
    @inline(never)
    private func importReadAhead(_ socket: SocketHandle, setup: ServerSetup, callbacks: ConnectionCallbacks, deadline: ContinuousClock.Instant, operation: @autoclosure () -> String) async throws -> SocketHandle {
        // Asked only when needed: its frame (2.2 KiB) is not the PROXY protocol's.
        let chosen = ServerNamePreselection.isNeeded(callbacks.settings)
            ? try await ServerNamePreselection.configuration(setup.configuration, for: socket, callbacks: callbacks, deadline: deadline, operation: operation())
            : nil
        try socket.withFD(operation()) { fd in
            // With a chosen identity the socket is set up from the
            // configuration, as a model socket is; else it copies the model.
            try SSLSocketSetup.importInPlace(fd, model: chosen == nil ? setup.model : nil, operation: operation())
            if let chosen {
                try SSLSocketSetup.apply(chosen, to: fd, as: .server, serverName: nil, operation: operation())
            }
        }
        return try prepareImported(socket, callbacks: callbacks, operation: operation())
    }

    private func prepareImported(_ socket: SocketHandle, callbacks: ConnectionCallbacks, operation: @autoclosure () -> String) throws -> SocketHandle {
        callbacks.bind(to: socket)
        try socket.withFD(operation()) { fd in
            try TCPSocketOptions.setNonblocking(fd)
            try TCPSocketOptions.setNoDelay(fd)
            guard SSL_ResetHandshake(fd, PR_TRUE) == SECSuccess else { throw TLSError.fromLastNSSError(operation()) }
            try callbacks.install(on: fd)
        }
        return socket
    }
}

/// An accepted socket whose PROXY protocol header has been read. A class, so
/// that the handshake's async frame, which every connection's task keeps,
/// holds one word for it.
private final class ProxiedSocket {
    let socket: SocketHandle
    let header: ProxyProtocolHeader

    init(socket: SocketHandle, header: ProxyProtocolHeader) {
        self.socket = socket
        self.header = header
        self.peerText = header.source?.description
    }

    /// The header's client as `remoteAddress` spells it; nil for a header
    /// without one (then the proxy's own address stands).
    let peerText: String?

    /// Never inlined, so that the header's copies stay out of the
    /// handshake's frame, which every connection's task keeps.
    @inline(never)
    static func connection(socket: SocketHandle, callbacks: ConnectionCallbacks, remoteAddress: String, initialEvent: HandshakeEvent, proxied: ProxiedSocket?, early: EarlyHandshake? = nil) -> TLSConnection {
        TLSConnection(socket: socket, callbacks: callbacks, remoteAddress: remoteAddress, initialEvent: initialEvent, proxyHeader: proxied?.header, early: early)
    }
}
