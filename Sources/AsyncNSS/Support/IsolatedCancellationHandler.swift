/// `withTaskCancellationHandler`, with `operation` run isolated to the
/// caller.
///
/// The closure a `nonisolated(nonsending)` function passes to
/// `withTaskCancellationHandler` is nonisolated: its `#isolation` is nil even
/// though the function's is the caller's actor. A wait inside it therefore
/// left the actor to enter the closure and came back after it: on an event
/// loop, three jobs per wait instead of one. Here the closure captures the
/// `isolated` parameter, which makes it isolated to the caller, and it calls
/// `operation`, which (nonisolated and nonsending) runs where it is called.
func withIsolatedCancellationHandler<Result>(
    isolation: isolated (any Actor)? = #isolation,
    operation: () async throws -> Result,
    onCancel: @Sendable () -> Void
) async rethrows -> Result {
    try await withTaskCancellationHandler {
        _ = isolation
        return try await operation()
    } onCancel: {
        onCancel()
    }
}
