/// A value made once, even when many tests ask for it at the same time; the
/// callers that come while it is being made wait for that one attempt.
actor MadeOnce<Value: Sendable> {
    private let make: @Sendable () async throws -> Value
    private var making: Task<Value, any Error>?

    init(_ make: @escaping @Sendable () async throws -> Value) {
        self.make = make
    }

    var value: Value {
        get async throws {
            if let making { return try await making.value }
            let task = Task { try await make() }
            making = task
            return try await task.value
        }
    }

    /// Forgets the value; the next caller makes a new one.
    func reset() { making = nil }
}
