import Logging
import Synchronization

/// Where ``TLSListener/serve(_:)`` hands connections: straight from the task
/// that ran the handshake to a task of the handler on the connection's loop.
///
/// The handshake task is already on that loop, so the hand-off crosses no
/// thread; the listener's sequence would hand each connection to a task on
/// the cooperative pool and back. Keeps the handler tasks, so that `serve`
/// can cancel them when it is cancelled and return only after the last one.
final class HandlerDelivery: Sendable {
    typealias Handler = @Sendable (TLSConnection) async throws -> Void

    private struct State {
        var handler: Handler?
        var cancelled = false
        var nextID = 0
        /// Handler tasks that run, by ID.
        var tasks: [Int: Task<Void, Never>] = [:]
        /// Tasks that ended before they were recorded in `tasks`.
        var endedEarly: Set<Int> = []
        /// Handlers that run, whether in `tasks` or in ``run(_:with:)``.
        var running = 0
        var idleWaiters: [UnsafeContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Sends connections to `handler` from now on.
    func start(_ handler: @escaping Handler) {
        state.withLock { $0.handler = handler }
    }

    /// Runs the handler for `connection` in a task on `loop`, then closes
    /// the connection; false when no handler is set (the caller delivers
    /// it to the sequence).
    func deliver(_ connection: TLSConnection, on loop: PollLoop) -> Bool {
        let started = state.withLock { state -> (Handler, Int)? in
            guard let handler = state.handler else { return nil }
            state.running += 1
            state.nextID += 1
            return (handler, state.nextID)
        }
        guard let (handler, id) = started else { return false }
        let task = Task(executorPreference: loop) {
            await Self.run(handler, connection)
            self.handlerEnded(id)
        }
        let cancelNow = state.withLock { state -> Bool in
            if state.endedEarly.remove(id) != nil { return false }
            state.tasks[id] = task
            return state.cancelled
        }
        if cancelNow { task.cancel() }
        return true
    }

    /// Runs `handler` for a connection that came through the sequence.
    func run(_ connection: TLSConnection, with handler: @escaping Handler) async {
        state.withLock { $0.running += 1 }
        await Self.run(handler, connection)
        handlerEnded(nil)
    }

    private static func run(_ handler: Handler, _ connection: TLSConnection) async {
        do {
            try await connection.executeThenClose(handler)
        } catch {
            connection.logger.debug("connection handler ended with an error", metadata: ["error": "\(error)"])
        }
    }

    private func handlerEnded(_ id: Int?) {
        let waiters = state.withLock { state -> [UnsafeContinuation<Void, Never>] in
            if let id, state.tasks.removeValue(forKey: id) == nil { state.endedEarly.insert(id) }
            state.running -= 1
            guard state.running == 0 else { return [] }
            defer { state.idleWaiters = [] }
            return state.idleWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Cancels the handler tasks that run, and those that start from now on.
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
