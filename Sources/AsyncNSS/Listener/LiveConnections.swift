import Synchronization

/// The connections a listener has delivered and that have not ended yet, so
/// that a graceful shutdown can wait for them and close the stragglers.
final class LiveConnections: Sendable {
    private struct Entry {
        weak var connection: TLSConnection?
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var emptyWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    var count: Int { state.withLock { $0.entries.count } }

    /// Tracks `connection` until ``remove(_:)`` is called with its
    /// callbacks (``AcceptedConnectionEnds`` does, when it ends).
    func add(_ connection: TLSConnection, callbacks: ConnectionCallbacks) {
        state.withLock { $0.entries[ObjectIdentifier(callbacks)] = Entry(connection: connection) }
        // Ended already, so its removal came before this entry: remove it now.
        if callbacks.hasEnded { remove(callbacks) }
    }

    /// Stops tracking the connection of `callbacks`, if it was tracked.
    func remove(_ callbacks: ConnectionCallbacks) {
        let id = ObjectIdentifier(callbacks)
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard state.entries.removeValue(forKey: id) != nil else { return [] }
            guard state.entries.isEmpty else { return [] }
            defer { state.emptyWaiters.removeAll() }
            return Array(state.emptyWaiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The connections still alive.
    func all() -> [TLSConnection] {
        state.withLock { $0.entries.values.compactMap(\.connection) }
    }

    /// Returns when no connection is left, or when the task is cancelled.
    func waitUntilEmpty() async {
        let id = state.withLock { state -> UInt64 in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withIsolatedCancellationHandler {
            await withCheckedContinuation { continuation in
                let done = state.withLock { state -> Bool in
                    if state.entries.isEmpty || Task.isCancelled { return true }
                    state.emptyWaiters[id] = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.emptyWaiters.removeValue(forKey: id) }?.resume()
        }
    }
}
