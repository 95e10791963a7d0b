#if ASYNCNSS_TSAN
/// Only in ThreadSanitizer builds (`scripts/sanitizers.sh` passes
/// `-DASYNCNSS_TSAN`): continuations that tell TSan about the hand-over from
/// the thread that resumes to the task that resumes. They shadow the
/// standard library's, so AsyncNSS uses them without a change at any call
/// site; `package` lets nss-tls and the tests see them too. Normal builds
/// never compile this file.
///
/// Why: with Swift 6.3.1 on Linux, TSan sees no happens-before edge from
/// `resume` on one thread to the resumed task on another. A value written
/// before `resume` and read after the `await` is reported as raced, and so is
/// the task's own frame when the next `withUnsafeContinuation` reuses the
/// memory that `resume` read (swiftlang/swift#57803).
/// `scripts/sanitizers/reproducers/continuation.swift` shows both.
///
/// The fix is an explicit edge on the address of the waiting task:
/// `__tsan_release` just before and just after the real `resume`, and
/// `__tsan_acquire` when a wait starts and when it returns. The release after
/// `resume` may land on a task that has finished; it only adds an edge, so it
/// can hide a race but never invent one.

@_silgen_name("__tsan_acquire")
private func __tsan_acquire(_ address: UnsafeRawPointer)

@_silgen_name("__tsan_release")
private func __tsan_release(_ address: UnsafeRawPointer)

private func tsanAcquire(_ address: UInt) {
    if let pointer = UnsafeRawPointer(bitPattern: address) { __tsan_acquire(pointer) }
}

private func tsanRelease(_ address: UInt) {
    if let pointer = UnsafeRawPointer(bitPattern: address) { __tsan_release(pointer) }
}

/// The address of the running task (0 outside a task), the key of its
/// hand-over edge; an integer, so that the continuations stay `Sendable`.
private func currentTaskAddress() -> UInt {
    withUnsafeCurrentTask { task in task.map { unsafeBitCast($0, to: UInt.self) } ?? 0 }
}

/// The standard library's `UnsafeContinuation` or `CheckedContinuation`,
/// with the hand-over edge around every `resume`. One type serves both names:
/// they differ only in the continuation they wrap, which `resumeBase` calls.
package struct SanitizedContinuation<T, E: Error>: Sendable {
    private let resumeBase: @Sendable (sending Result<T, E>) -> Void
    let task: UInt

    init(base: _Concurrency.UnsafeContinuation<T, E>, task: UInt) {
        self.resumeBase = { base.resume(with: $0) }
        self.task = task
    }

    init(base: _Concurrency.CheckedContinuation<T, E>, task: UInt) {
        self.resumeBase = { base.resume(with: $0) }
        self.task = task
    }

    package func resume(returning value: sending T) {
        resume(with: .success(value))
    }

    package func resume(throwing error: E) {
        resume(with: .failure(error))
    }

    package func resume(with result: sending Result<T, E>) {
        tsanRelease(task)
        resumeBase(result)
        tsanRelease(task)
    }
}

extension SanitizedContinuation where T == Void {
    package func resume() { resume(returning: ()) }
}

package typealias UnsafeContinuation<T, E: Error> = SanitizedContinuation<T, E>
package typealias CheckedContinuation<T, E: Error> = SanitizedContinuation<T, E>

package func withUnsafeContinuation<T>(
    isolation: isolated (any Actor)? = #isolation,
    _ body: (UnsafeContinuation<T, Never>) -> Void
) async -> sending T {
    let task = currentTaskAddress()
    tsanAcquire(task)
    let value = await _Concurrency.withUnsafeContinuation(isolation: isolation) { (base: _Concurrency.UnsafeContinuation<T, Never>) in
        body(UnsafeContinuation(base: base, task: task))
    }
    tsanAcquire(task)
    return value
}

package func withUnsafeThrowingContinuation<T>(
    isolation: isolated (any Actor)? = #isolation,
    _ body: (UnsafeContinuation<T, any Error>) -> Void
) async throws -> sending T {
    let task = currentTaskAddress()
    tsanAcquire(task)
    defer { tsanAcquire(task) }
    return try await _Concurrency.withUnsafeThrowingContinuation(isolation: isolation) { (base: _Concurrency.UnsafeContinuation<T, any Error>) in
        body(UnsafeContinuation(base: base, task: task))
    }
}

package func withCheckedContinuation<T>(
    isolation: isolated (any Actor)? = #isolation,
    function: String = #function,
    _ body: (CheckedContinuation<T, Never>) -> Void
) async -> sending T {
    let task = currentTaskAddress()
    tsanAcquire(task)
    let value = await _Concurrency.withCheckedContinuation(isolation: isolation, function: function) { (base: _Concurrency.CheckedContinuation<T, Never>) in
        body(CheckedContinuation(base: base, task: task))
    }
    tsanAcquire(task)
    return value
}

package func withCheckedThrowingContinuation<T>(
    isolation: isolated (any Actor)? = #isolation,
    function: String = #function,
    _ body: (CheckedContinuation<T, any Error>) -> Void
) async throws -> sending T {
    let task = currentTaskAddress()
    tsanAcquire(task)
    defer { tsanAcquire(task) }
    return try await _Concurrency.withCheckedThrowingContinuation(isolation: isolation, function: function) { (base: _Concurrency.CheckedContinuation<T, any Error>) in
        body(CheckedContinuation(base: base, task: task))
    }
}
#endif
