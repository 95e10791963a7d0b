import Synchronization

/// A value behind a mutex, for state that holds C pointers or other values
/// that are not `Sendable` (which `Mutex` would insist on transferring).
// @unchecked Sendable: `value` is read and written only inside
// `mutex.withLock`, so every access is serialised.
final class Locked<Value>: @unchecked Sendable {
    private let mutex = Mutex<Void>(())
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try mutex.withLock { _ in try body(&value) }
    }
}
