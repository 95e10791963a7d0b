#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A small pool of library-owned threads for calls that may block: name
/// resolution, opening NSS databases, loading PKCS#11 modules, reading files.
///
/// `run` suspends the calling task until the work is done on a pool thread,
/// so the cooperative pool never blocks.
final class BlockingPool: Sendable {
    private struct State {
        var queue: [@Sendable () -> Void] = []
        var head = 0
        var stopping = false
    }

    private let state = Mutex(State())
    private let signal = Semaphore()
    private let threads: Mutex<[OwnedThread]> = Mutex([])

    init(threadCount: Int) {
        var started: [OwnedThread] = []
        for index in 0..<threadCount {
            started.append(OwnedThread(name: "nss-blocking-\(index)") { [self] in self.workLoop() })
        }
        threads.withLock { $0 = started }
    }

    /// Runs `work` on a pool thread and returns its result.
    func run<Result: Sendable>(_ work: @escaping @Sendable () throws -> Result) async throws -> Result {
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Result, any Error>) in
            let accepted = state.withLock { state -> Bool in
                if state.stopping { return false }
                state.queue.append {
                    continuation.resume(with: Swift.Result { try work() })
                }
                return true
            }
            if accepted {
                signal.post()
            } else {
                continuation.resume(throwing: TLSError(kind: .runtime, operation: "blocking call", message: "the NSS runtime is shutting down"))
            }
        }
    }

    /// Finishes queued work, then stops and joins every thread.
    func shutdown() {
        let count = threads.withLock { $0.count }
        state.withLock { $0.stopping = true }
        for _ in 0..<count { signal.post() }
        let joined = threads.withLock { threads -> [OwnedThread] in
            defer { threads = [] }
            return threads
        }
        for thread in joined { thread.join() }
    }

    private func workLoop() {
        while true {
            signal.wait()
            let job = state.withLock { state -> (@Sendable () -> Void)? in
                guard state.head < state.queue.count else { return nil }
                let job = state.queue[state.head]
                state.head += 1
                if state.head == state.queue.count {
                    state.queue.removeAll(keepingCapacity: true)
                    state.head = 0
                }
                return job
            }
            if let job {
                job()
            } else if state.withLock({ $0.stopping }) {
                return
            }
        }
    }
}

/// A counting semaphore over a pthread mutex and condition variable.
// @unchecked Sendable: `mutex`, `condition` and `count` are only touched
// between pthread_mutex_lock and pthread_mutex_unlock on `mutex`.
final class Semaphore: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var count = 0

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func post() {
        pthread_mutex_lock(mutex)
        count += 1
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    func wait() {
        pthread_mutex_lock(mutex)
        while count == 0 {
            pthread_cond_wait(condition, mutex)
        }
        count -= 1
        pthread_mutex_unlock(mutex)
    }
}
