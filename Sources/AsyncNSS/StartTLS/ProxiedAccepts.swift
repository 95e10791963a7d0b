internal import CNSS
import Logging
import Synchronization

/// The accept loop of a ``TCPListener`` that requires PROXY protocol
/// headers: it accepts, reads each new connection's header in a task of its
/// own (so that a slow or silent client holds up no other), and queues the
/// connections whose header arrived for ``TCPListener/accept()``.
final class ProxiedAccepts: Sendable {
    private let queue = AcceptedQueue()
    private let loop: Task<Void, Never>

    init(listeningSocket: SocketHandle, localAddress: String, services: RuntimeServices, headerTimeout: Duration, logger: Logger) {
        let queue = self.queue
        let isolation = LoopIsolation(loop: listeningSocket.pollLoop)
        loop = Task(executorPreference: listeningSocket.pollLoop) {
            await Self.run(listeningSocket, localAddress: localAddress, services: services, headerTimeout: headerTimeout, logger: logger, queue: queue, isolatedTo: isolation)
        }
    }

    /// The next connection whose header has been read.
    func next() async throws -> TCPConnection {
        try await queue.take()
    }

    /// Stops accepting; queued connections and waiting ``next()`` calls end
    /// with ``TLSError/Kind/closed``.
    func stop() {
        loop.cancel()
        queue.finish()
    }

    /// Isolated to the listening socket's loop, as ``Acceptor`` is, so that
    /// each wait costs one job there (``LoopIsolation``).
    private static func run(_ listeningSocket: SocketHandle, localAddress: String, services: RuntimeServices, headerTimeout: Duration, logger: Logger, queue: AcceptedQueue, isolatedTo isolation: isolated LoopIsolation) async {
        let operation = "accepting on \(localAddress)"
        await withDiscardingTaskGroup { group in
            // Isolated to `isolation` because it names it (see `Acceptor.run`).
            _ = isolation
            var failuresInARow = 0
            accepting: while !Task.isCancelled {
                let step: SocketHandle.AcceptStep
                do {
                    step = try listeningSocket.acceptSome(operation: operation)
                } catch {
                    break accepting
                }
                switch step {
                case .accepted(let accepted, let peer):
                    failuresInARow = 0
                    let deadline = ContinuousClock.now + headerTimeout
                    // The header is read on the loop the connection will
                    // belong to, isolated to it: each wait resumes in place.
                    let loop = services.pollGroup.assign()
                    group.addTask(executorPreference: loop) {
                        await readHeader(accepted, peer: peer, services: services, deadline: deadline, logger: logger, queue: queue, isolatedTo: LoopIsolation(loop: loop))
                    }
                case .failed(let code) where code == NSSErrors.wouldBlock:
                    guard case .ready = await listeningSocket.wait(for: .read) else { break accepting }
                case .failed(let code):
                    if !listeningSocket.isOpen { break accepting }
                    failuresInARow += 1
                    let backoff = Acceptor.failureBackoff(afterFailures: failuresInARow)
                    logger.warning("accept failed, backing off", metadata: ["error": "\(TLSError.fromNSSCode(code, operation))", "backoff": "\(backoff)"])
                    guard await listeningSocket.pause(for: backoff) == .elapsed else { break accepting }
                }
            }
            group.cancelAll()
        }
        queue.finish()
    }

    private static func readHeader(_ accepted: PollSocket, peer: NetworkAddress, services: RuntimeServices, deadline: ContinuousClock.Instant, logger: Logger, queue: AcceptedQueue, isolatedTo isolation: isolated LoopIsolation) async {
        let operation = "reading the PROXY protocol header from \(peer)"
        do {
            try ReadAheadLayer.push(onto: accepted.fd, operation: operation)
        } catch {
            PR_Close(accepted.fd)
            logger.info("PROXY protocol header not read", metadata: ["proxy": "\(peer)", "error": "\(error)"])
            return
        }
        // From here the handle owns the descriptor.
        let socket = SocketHandle(accepted.fd, services: services, loop: isolation.loop)
        do {
            try socket.withFD(operation) { fd in
                try TCPSocketOptions.setNonblocking(fd)
                try TCPSocketOptions.setNoDelay(fd)
            }
            let header = try await ProxyHeaderReader.read(on: socket, deadline: deadline, operation: operation)
            let connection = TCPConnection(socket: socket, remoteAddress: header.source?.description ?? peer.description, hostName: nil, proxyHeader: header)
            if !queue.put(connection) { await connection.close() }
        } catch {
            await socket.close()
            if !(error is CancellationError) {
                logger.info("PROXY protocol header refused; connection closed", metadata: ["proxy": "\(peer)", "error": "\(error)"])
            }
        }
    }
}

/// Connections waiting for ``TCPListener/accept()``, and accepts waiting
/// for connections. State is decided under the lock; continuations are
/// resumed after it is released.
private final class AcceptedQueue: Sendable {
    private struct State {
        var connections: [TCPConnection] = []
        var waiters: [Int: CheckedContinuation<TCPConnection, any Error>] = [:]
        var order: [Int] = []
        var nextID = 0
        var finished = false
    }

    private let state = Mutex(State())

    private static var closedError: TLSError {
        TLSError(kind: .closed, operation: "accepting", message: "the listener is closed")
    }

    /// Hands `connection` to the oldest waiting accept, or queues it; false
    /// once the queue is finished (the caller closes the connection).
    func put(_ connection: TCPConnection) -> Bool {
        let waiter = state.withLock { state -> CheckedContinuation<TCPConnection, any Error>?? in
            if state.finished { return .none }
            while let id = state.order.first {
                state.order.removeFirst()
                if let waiter = state.waiters.removeValue(forKey: id) { return .some(waiter) }
            }
            state.connections.append(connection)
            return .some(nil)
        }
        switch waiter {
        case .none: return false
        case .some(let waiter?): waiter.resume(returning: connection)
        case .some(nil): break
        }
        return true
    }

    func take() async throws -> TCPConnection {
        let id = state.withLock { state -> Int in
            defer { state.nextID += 1 }
            return state.nextID
        }
        return try await withIsolatedCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<TCPConnection, any Error>) in
                let outcome = state.withLock { state -> Result<TCPConnection, any Error>? in
                    if !state.connections.isEmpty { return .success(state.connections.removeFirst()) }
                    if state.finished { return .failure(Self.closedError) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    state.order.append(id)
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Ends waiting accepts with `closed`; queued connections are dropped,
    /// which closes them.
    func finish() {
        let (waiters, dropped) = state.withLock { state -> ([CheckedContinuation<TCPConnection, any Error>], [TCPConnection]) in
            state.finished = true
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            state.order.removeAll()
            defer { state.connections.removeAll() }
            return (waiters, state.connections)
        }
        for waiter in waiters { waiter.resume(throwing: Self.closedError) }
        _ = dropped
    }
}
