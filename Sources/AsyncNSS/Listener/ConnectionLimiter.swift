import Synchronization

/// Counts a listener's connections, from accept to close, and makes the
/// accept loop wait while the count is at the limit. Connections beyond it
/// stay in the kernel's backlog: nothing is accepted and then dropped.
final class ConnectionLimiter: Sendable {
    private struct State {
        var active = 0
        var waiter: CheckedContinuation<Void, Never>?
    }

    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = max(1, limit) }

    var active: Int { state.withLock { $0.active } }

    /// Returns once a connection may be accepted. Cancellation ends the wait
    /// early; the caller checks for it. Runs on the caller's executor, so the
    /// accept loop's check costs no hop.
    nonisolated(nonsending) func waitForRoom() async {
        // Below the limit (nearly always) no continuation is needed; the slow
        // path checks again under the lock.
        if state.withLock({ $0.active < limit }) { return }
        await withIsolatedCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Bool in
                    if state.active < limit || Task.isCancelled { return true }
                    state.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }?.resume()
        }
    }

    /// Counts an accepted connection. Call ``release()`` once when it has
    /// ended (``AcceptedConnectionEnds`` does, once per connection).
    func admit() {
        state.withLock { $0.active += 1 }
    }

    /// Counts out a connection that ``admit()`` counted.
    func release() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.active -= 1
            guard state.active < limit, let waiter = state.waiter else { return nil }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }
}
