import Synchronization

/// The rest of a server's handshake after it accepted early data (0-RTT) and
/// handed the connection over: the early bytes that arrive meanwhile, and the
/// handshake's outcome, which a task of its own drives (``Acceptor``).
///
/// The connection's reads take the early bytes first and then wait for the
/// outcome; its writes and rehandshakes wait for the outcome. Only the
/// handshake's task touches the socket until then.
final class EarlyHandshake: Sendable {
    enum Next: Sendable {
        /// Early bytes, in the order they came.
        case data([UInt8])
        /// The handshake completed; `then` came right after it, and reads go
        /// to the socket after those.
        case completed(then: [[UInt8]])
        /// The handshake failed; the connection is closed.
        case failed(TLSError)
    }

    private let state: Mutex<EarlyHandshakeState>

    init(firstData: [[UInt8]]) {
        state = Mutex(EarlyHandshakeState(chunks: firstData))
    }

    /// Bytes of the stream that came as early data, so far; final once the
    /// handshake completed.
    var byteCount: Int { state.withLock { $0.byteCount } }
    var isFinished: Bool { state.withLock { $0.outcome != nil } }

    /// More early bytes, from the handshake's task.
    func deliver(_ chunk: [UInt8]) {
        let waiters = state.withLock { $0.deliver(chunk) }
        for waiter in waiters { waiter.resume() }
    }

    /// The handshake's outcome, from its task: nil for success, with the
    /// bytes that came right after it (not early data).
    func finish(_ failure: TLSError?, then data: [[UInt8]] = []) {
        let waiters = state.withLock { $0.finish(failure, then: data) }
        for waiter in waiters { waiter.resume() }
    }

    /// The next early chunk, or the outcome once every chunk was taken.
    func next() async throws -> Next {
        try await waitUntil { state in state.takeNext() }
    }

    /// Waits for the outcome, leaving early chunks for reads; throws the
    /// handshake's error if it failed.
    func waitForCompletion() async throws {
        try await waitUntil { state -> Void? in
            switch state.outcome {
            case .none: return nil
            case .some(.none): return ()
            case .some(.some(let error)): throw error
            }
        }
    }

    /// Runs `decide` under the lock until it returns a value; between tries
    /// waits for a chunk or the outcome. Cancellation ends the wait with
    /// `CancellationError`.
    private func waitUntil<Result: Sendable>(_ decide: @Sendable (inout EarlyHandshakeState) throws -> Result?) async throws -> Result {
        while true {
            if let result = try state.withLock({ try decide(&$0) }) { return result }
            try Task.checkCancellation()
            let id = state.withLock { $0.nextWaiterID() }
            await withIsolatedCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    // Decided under the lock: wait only if nothing changed
                    // since the look above and the task is not cancelled.
                    let resumeNow = state.withLock { $0.addWaiter(id, continuation, cancelled: Task.isCancelled) }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                let waiter = state.withLock { $0.removeWaiter(id) }
                waiter?.resume()
            }
        }
    }
}

/// ``EarlyHandshake``'s state, decided under its lock; the continuations it
/// hands back are resumed after the lock is released.
struct EarlyHandshakeState {
    var chunks: [[UInt8]]
    private(set) var byteCount: Int
    /// nil while the handshake runs; `.some(nil)` once it completed.
    private(set) var outcome: TLSError??
    private var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    private var nextID: UInt64 = 0
    /// Bumped by every chunk and the outcome, so that a waiter registering
    /// after a change does not sleep through it.
    private var version: UInt64 = 0
    private var seen: [UInt64: UInt64] = [:]

    init(chunks: [[UInt8]]) {
        self.chunks = chunks
        self.byteCount = chunks.reduce(0) { $0 + $1.count }
    }

    mutating func deliver(_ chunk: [UInt8]) -> [CheckedContinuation<Void, Never>] {
        guard outcome == nil, !chunk.isEmpty else { return [] }
        chunks.append(chunk)
        byteCount += chunk.count
        return wakeAll()
    }

    /// Bytes read with the handshake's completion; reads get them after the
    /// early chunks, and they do not count as early.
    private(set) var trailing: [[UInt8]] = []

    mutating func finish(_ failure: TLSError?, then data: [[UInt8]]) -> [CheckedContinuation<Void, Never>] {
        guard outcome == nil else { return [] }
        outcome = .some(failure)
        if failure != nil { chunks.removeAll() } else { trailing = data }
        return wakeAll()
    }

    mutating func takeNext() -> EarlyHandshake.Next? {
        if !chunks.isEmpty { return .data(chunks.removeFirst()) }
        switch outcome {
        case .none: return nil
        case .some(.none):
            let data = trailing
            trailing = []
            return .completed(then: data)
        case .some(.some(let error)): return .failed(error)
        }
    }

    mutating func nextWaiterID() -> UInt64 {
        nextID += 1
        seen[nextID] = version
        return nextID
    }

    /// Registers the waiter; true when it must not sleep (something changed
    /// since it looked, or its task is cancelled).
    mutating func addWaiter(_ id: UInt64, _ continuation: CheckedContinuation<Void, Never>, cancelled: Bool) -> Bool {
        let looked = seen.removeValue(forKey: id)
        if cancelled || looked != version { return true }
        waiters[id] = continuation
        return false
    }

    mutating func removeWaiter(_ id: UInt64) -> CheckedContinuation<Void, Never>? {
        seen[id] = nil
        return waiters.removeValue(forKey: id)
    }

    private mutating func wakeAll() -> [CheckedContinuation<Void, Never>] {
        version += 1
        defer { waiters.removeAll() }
        return Array(waiters.values)
    }
}
