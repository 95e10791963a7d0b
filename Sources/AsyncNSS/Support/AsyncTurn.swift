import Synchronization

/// A turn that one task holds at a time, handed to waiters first come, first
/// served. A waiter that is cancelled leaves the queue with
/// `CancellationError`; after ``close(_:)`` every waiter and every later
/// ``acquire(orThrowIfClosed:)`` fails with a `closed` error. Those errors
/// are made only when thrown: most turns close with no one waiting.
///
/// The state is decided under the lock; continuations are resumed after it
/// is released.
final class AsyncTurn: Sendable {
    private typealias Waiter = CheckedContinuation<Void, any Error>

    private struct State {
        var held = false
        var waiters: [(id: UInt64, continuation: Waiter)] = []
        /// IDs handed out whose continuation is not queued yet.
        var pending: Set<UInt64> = []
        var cancelledEarly: Set<UInt64> = []
        var nextID: UInt64 = 0
        var closed = false
    }

    private let state = Mutex(State())

    /// Waits for the turn. Release it with ``release()``. Throws
    /// `closedError` once the turn is closed.
    nonisolated(nonsending) func acquire(orThrowIfClosed closedError: @autoclosure () -> TLSError) async throws {
        let fastPath = try state.withLock { state -> UInt64? in
            if state.closed { throw closedError() }
            if !state.held {
                state.held = true
                return nil
            }
            let id = state.nextID
            state.nextID += 1
            state.pending.insert(id)
            return id
        }
        guard let id = fastPath else { return }
        try await withIsolatedCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Waiter) in
                let immediate = state.withLock { state -> Result<Void, any Error>? in
                    state.pending.remove(id)
                    if state.cancelledEarly.remove(id) != nil { return .failure(CancellationError()) }
                    if state.closed { return .failure(closedError()) }
                    if !state.held {
                        state.held = true
                        return .success(())
                    }
                    state.waiters.append((id, continuation))
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                if let index = state.waiters.firstIndex(where: { $0.id == id }) {
                    return state.waiters.remove(at: index).continuation
                }
                if state.pending.contains(id) { state.cancelledEarly.insert(id) }
                return nil
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Hands the turn to the next waiter, or frees it.
    func release() {
        let next = state.withLock { state -> Waiter? in
            guard !state.waiters.isEmpty else {
                state.held = false
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        next?.resume()
    }

    /// Fails every waiter with `error`, made only if one waits, and every
    /// later ``acquire(orThrowIfClosed:)`` with its own.
    func close(_ error: @autoclosure () -> TLSError) {
        let waiting = state.withLock { state -> [Waiter] in
            state.closed = true
            defer { state.waiters.removeAll() }
            return state.waiters.map(\.continuation)
        }
        guard !waiting.isEmpty else { return }
        let error = error()
        for waiter in waiting { waiter.resume(throwing: error) }
    }
}
