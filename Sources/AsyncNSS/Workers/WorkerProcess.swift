#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// A worker process that a ``WorkerLauncher`` started.
///
/// A thread of its own waits for the process to exit (`waitpid`), so
/// ``exitStatus()`` never blocks a task, and the process is reaped whether or
/// not anyone asks.
public final class WorkerProcess: Sendable {
    /// The worker's process ID.
    public let pid: Int32

    private struct State {
        var status: Int32?
        var waiters: [Int: CheckedContinuation<Int32, any Error>] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    init(pid: pid_t) {
        self.pid = pid
        OwnedThread(name: "nss-worker-wait") { [self] in
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) < 0, errno == EINTR {}
            // The low 7 bits are the signal that ended it, or 0 for an exit.
            let signal = raw & 0x7F
            let status = signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
            let waiters = state.withLock { state in
                state.status = status
                defer { state.waiters.removeAll() }
                return Array(state.waiters.values)
            }
            for waiter in waiters { waiter.resume(returning: status) }
        }.detach()
    }

    /// Whether the worker has exited.
    public var hasExited: Bool { state.withLock { $0.status != nil } }

    /// Sends `signal` to the worker, unless it has exited.
    public func signal(_ signal: Int32) {
        // Checked under the lock that the reaper takes to record the exit,
        // so a reaped worker's ID, which the system may give another
        // process, is never signalled.
        state.withLock { state in
            if state.status == nil { _ = kill(pid, signal) }
        }
    }

    /// Waits until the worker exits; returns its exit status, or 128 plus
    /// the signal that ended it.
    ///
    /// - Throws: `CancellationError` when the waiting task is cancelled (the
    ///   worker goes on).
    public func exitStatus() async throws -> Int32 {
        let id = state.withLock { state -> Int in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return try await withIsolatedCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
                let outcome = state.withLock { state -> Result<Int32, any Error>? in
                    if let status = state.status { return .success(status) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
