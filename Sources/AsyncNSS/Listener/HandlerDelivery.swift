import Logging
import Synchronization

/// The tasks of ``TLSListener/serve(_:)``: once a handler is set, each
/// accepted connection gets one task, on its loop, that runs its handshake
/// and then the handler, with no second task and no thread crossing.
///
/// The listener's sequence would hand each connection to a task on the
/// cooperative pool and back. A task has two phases:
/// - **handshake**: closing the listener cancels it, and the accept loop
///   waits for it to end (``cancelHandshakes()``, ``waitForHandshakes()``);
/// - **handler**: the listener's close leaves it running; only cancelling
///   `serve` cancels it (``cancelAll()``).
///
/// Connections whose handshake ran before the handler was set reach it
/// through ``deliver(_:on:)`` or ``run(_:with:)``. Keeps every task, so that
/// `serve` can cancel them and return only after the last one.
final class HandlerDelivery: Sendable {
    typealias Handler = @Sendable (TLSConnection) async throws -> Void

    /// The handler in a box: a closure returned out of `withLock`, which is
    /// generic, would be wrapped in a thunk, and each connection's task would
    /// keep the thunks' contexts for its whole life.
    final class HandlerBox: Sendable {
        let run: Handler
        init(_ run: @escaping Handler) { self.run = run }
    }

    private struct State {
        var handler: HandlerBox?
        /// `serve` was cancelled: every task, running or new, is cancelled.
        var cancelled = false
        /// The listener closed: tasks in their handshake are cancelled, and a
        /// handshake that completes anyway gets no handler.
        var handshakesCancelled = false
        var nextID = 0
        /// Tasks that run, by ID.
        var tasks: [Int: Task<Void, Never>] = [:]
        /// Tasks that ended before they were recorded in `tasks`.
        var endedEarly: Set<Int> = []
        /// Tasks in their handshake phase.
        var handshaking: Set<Int> = []
        /// Tasks and ``run(_:with:)`` calls that have not ended.
        var running = 0
        var idleWaiters: [UnsafeContinuation<Void, Never>] = []
        var handshakeWaiters: [UnsafeContinuation<Void, Never>] = []

        /// The waiters to resume once `handshaking` is empty.
        mutating func takeHandshakeWaitersIfDone() -> [UnsafeContinuation<Void, Never>] {
            guard handshaking.isEmpty else { return [] }
            defer { handshakeWaiters = [] }
            return handshakeWaiters
        }

        /// Counts one task or call as ended; the idle waiters to resume if
        /// it was the last.
        mutating func countEnded() -> [UnsafeContinuation<Void, Never>] {
            running -= 1
            guard running == 0 else { return [] }
            defer { idleWaiters = [] }
            return idleWaiters
        }
    }

    private let state = Mutex(State())

    /// Sends connections to `handler` from now on. Returns its box, for
    /// ``run(_:with:)``.
    func start(_ handler: @escaping Handler) -> HandlerBox {
        let box = HandlerBox(handler)
        state.withLock { $0.handler = box }
        return box
    }

    /// Starts a connection's task on `loop`, in its handshake phase, isolated
    /// to a new ``HandshakeDriver`` from its first job; `body` runs the
    /// handshake and then ``runHandler(of:afterHandshakeOf:)``. False when no
    /// handler is set or the listener closed (the caller then runs the
    /// handshake itself).
    func spawn(on loop: PollLoop, _ body: @escaping @Sendable (_ driver: isolated HandshakeDriver, _ id: Int) async -> Void) -> Bool {
        let id = state.withLock { state -> Int? in
            guard state.handler != nil, !state.handshakesCancelled else { return nil }
            state.running += 1
            state.nextID += 1
            state.handshaking.insert(state.nextID)
            return state.nextID
        }
        guard let id else { return false }
        record(id, HandshakeDriver.startTask(on: loop) { driver in
            await body(driver, id)
            self.taskEnded(id)
        })
        return true
    }

    /// Runs the handler for `connection`, whose handshake task `id` of
    /// ``spawn(on:_:)`` just completed, isolated to the connection, then
    /// closes it; closes it at once when the listener closed meanwhile.
    func runHandler(of connection: TLSConnection, afterHandshakeOf id: Int) async {
        guard let handler = handshakeSucceeded(id) else {
            await connection.close()
            return
        }
        await connection.runHandler(handler)
    }

    /// Moves task `id` to its handler phase and returns the handler; nil
    /// when the listener closed meanwhile.
    private func handshakeSucceeded(_ id: Int) -> HandlerBox? {
        let (handler, waiters) = state.withLock { state -> (HandlerBox?, [UnsafeContinuation<Void, Never>]) in
            state.handshaking.remove(id)
            let handler = state.handshakesCancelled ? nil : state.handler
            return (handler, state.takeHandshakeWaitersIfDone())
        }
        for waiter in waiters { waiter.resume() }
        return handler
    }

    /// Runs the handler for `connection` in a task on `loop`, isolated to
    /// the connection, then closes the connection; false when no handler is
    /// set (the caller delivers it to the sequence).
    func deliver(_ connection: TLSConnection, on loop: PollLoop) -> Bool {
        let started = state.withLock { state -> (HandlerBox, Int)? in
            guard let handler = state.handler else { return nil }
            state.running += 1
            state.nextID += 1
            return (handler, state.nextID)
        }
        guard let (handler, id) = started else { return false }
        record(id, Task(executorPreference: loop) {
            await connection.runHandler(handler)
            self.taskEnded(id)
        })
        return true
    }

    /// Runs `handler` for a connection that came through the sequence.
    func run(_ connection: TLSConnection, with handler: HandlerBox) async {
        state.withLock { $0.running += 1 }
        await connection.runHandler(handler)
        handlerEnded()
    }

    /// Runs `handler` with `connection` and closes the connection after it,
    /// logging what the handler threw. Runs isolated to the caller (the
    /// connection, through ``TLSConnection/runHandler(_:)``), so that the
    /// handler's calls to the connection make no executor hop.
    static func run(_ handler: HandlerBox, _ connection: TLSConnection) async {
        // Not `executeThenClose`: its generic result would wrap the handler
        // in a thunk that the task keeps while the handler runs.
        do {
            try await handler.run(connection)
        } catch {
            logEnd(of: connection, with: error)
        }
        await connection.close()
    }

    /// Never inlined: the log line's values would otherwise sit in the async
    /// frame of ``run(_:_:)``, which every connection's task keeps.
    @inline(never)
    private static func logEnd(of connection: TLSConnection, with error: any Error) {
        connection.logger.debug("connection handler ended with an error", metadata: ["error": "\(error)"])
    }

    /// Keeps `task` so that it can be cancelled, unless it already ended.
    private func record(_ id: Int, _ task: Task<Void, Never>) {
        let cancelNow = state.withLock { state -> Bool in
            if state.endedEarly.remove(id) != nil { return false }
            state.tasks[id] = task
            return state.cancelled || (state.handshakesCancelled && state.handshaking.contains(id))
        }
        if cancelNow { task.cancel() }
    }

    private func taskEnded(_ id: Int) {
        let (idle, handshakesDone) = state.withLock { state -> ([UnsafeContinuation<Void, Never>], [UnsafeContinuation<Void, Never>]) in
            if state.tasks.removeValue(forKey: id) == nil { state.endedEarly.insert(id) }
            state.handshaking.remove(id)
            return (state.countEnded(), state.takeHandshakeWaitersIfDone())
        }
        for waiter in idle + handshakesDone { waiter.resume() }
    }

    private func handlerEnded() {
        let waiters = state.withLock { $0.countEnded() }
        for waiter in waiters { waiter.resume() }
    }

    /// Cancels the tasks still in their handshake; those that start from
    /// now on are not started. For the listener's close.
    func cancelHandshakes() {
        let tasks = state.withLock { state -> [Task<Void, Never>] in
            state.handshakesCancelled = true
            return state.handshaking.compactMap { state.tasks[$0] }
        }
        for task in tasks { task.cancel() }
    }

    /// Returns once no task is in its handshake phase.
    func waitForHandshakes() async {
        await withUnsafeContinuation { (waiter: UnsafeContinuation<Void, Never>) in
            let done = state.withLock { state -> Bool in
                if state.handshaking.isEmpty { return true }
                state.handshakeWaiters.append(waiter)
                return false
            }
            if done { waiter.resume() }
        }
    }

    /// Cancels every task that runs, and those that start from now on.
    func cancelAll() {
        let tasks = state.withLock { state -> [Task<Void, Never>] in
            state.cancelled = true
            return Array(state.tasks.values)
        }
        for task in tasks { task.cancel() }
    }

    /// Returns once no handler runs.
    func waitUntilIdle() async {
        await withUnsafeContinuation { (waiter: UnsafeContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                if state.running == 0 { return true }
                state.idleWaiters.append(waiter)
                return false
            }
            if idle { waiter.resume() }
        }
    }
}

extension TLSConnection {
    /// Runs `handler` isolated to this connection, on its loop, and closes
    /// the connection after it.
    func runHandler(_ handler: HandlerDelivery.HandlerBox) async {
        await HandlerDelivery.run(handler, self)
    }
}
