import Synchronization

/// A turn that one task holds at a time, handed to waiters first come, first
/// served. A waiter that is cancelled leaves the queue with
/// `CancellationError`; after ``close(_:)`` every waiter and every later
/// ``acquire()`` fails with the given error.
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
        /// Boxed: every connection keeps a turn for its writes, and an
        /// inline `TLSError` would make each 64 bytes larger.
        var closed: Closed?
    }

    private final class Closed: Sendable {
        let error: TLSError
        init(_ error: TLSError) { self.error = error }
    }

    private let state = Mutex(State())

    /// Waits for the turn. Release it with ``release()``.
    nonisolated(nonsending) func acquire() async throws {
        let fastPath = try state.withLock { state -> UInt64? in
            if let closed = state.closed { throw closed.error }
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
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Waiter) in
                let immediate = state.withLock { state -> Result<Void, any Error>? in
                    state.pending.remove(id)
                    if state.cancelledEarly.remove(id) != nil { return .failure(CancellationError()) }
                    if let closed = state.closed { return .failure(closed.error) }
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

    /// Fails every waiter and every later ``acquire()`` with `error`.
    func close(_ error: TLSError) {
        let waiting = state.withLock { state -> [Waiter] in
            if state.closed == nil { state.closed = Closed(error) }
            defer { state.waiters.removeAll() }
            return state.waiters.map(\.continuation)
        }
        for waiter in waiting { waiter.resume(throwing: error) }
    }
}
