import Synchronization

/// An optional task that an owner starts once and cancels when it goes away.
final class BackgroundTask: Sendable {
    private let task = Mutex<Task<Void, Never>?>(nil)

    func start(_ operation: @escaping @Sendable () async -> Void) {
        let started = Task { await operation() }
        task.withLock { $0 = started }
    }

    deinit {
        cancel()
    }

    func cancel() {
        task.withLock { $0 }?.cancel()
    }
}
