import Testing

struct TimedOut: Error, CustomStringConvertible {
    let seconds: Double
    var description: String { "the test did not finish within \(seconds) s" }
}

/// Runs `body`, failing with ``TimedOut`` if it takes longer than `seconds`.
/// Every integration test wraps its body in this, so a hang fails instead of
/// stalling CI.
func withTimeout<Result: Sendable>(
    seconds: Double,
    _ body: @escaping @Sendable () async throws -> Result
) async throws -> Result {
    try await withThrowingTaskGroup(of: Result.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw TimedOut(seconds: seconds)
        }
        defer { group.cancelAll() }
        guard let result = try await group.next() else { throw TimedOut(seconds: seconds) }
        return result
    }
}
