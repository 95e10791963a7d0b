import Synchronization

/// Holds what a benchmark's setup made, for its body and teardown.
final class Fixture<Value: Sendable>: Sendable {
    private let storage = Mutex<Value?>(nil)

    func set(_ value: Value?) { storage.withLock { $0 = value } }

    /// The value that setup stored; a missing one is a bug in the benchmark.
    var value: Value {
        guard let value = storage.withLock({ $0 }) else { fatalError("the benchmark's setup did not run") }
        return value
    }

    /// Removes and returns the value, for teardown.
    func take() -> Value? { storage.withLock { value in defer { value = nil }; return value } }
}
