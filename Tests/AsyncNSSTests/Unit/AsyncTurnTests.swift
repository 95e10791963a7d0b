import Synchronization
import Testing
@testable import AsyncNSS

/// The turn that a connection's writes (and its rehandshakes) take one at a time.
@Suite("AsyncTurn: one holder, waiters first come first served, and closing")
struct AsyncTurnTests {
    static func closed(_ operation: String) -> TLSError {
        TLSError(kind: .closed, operation: operation, message: "the connection was closed")
    }

    @Test("a waiter gets the turn when it is released")
    func handOff() async throws {
        try await withTimeout(seconds: 60) {
            let turn = AsyncTurn()
            try await turn.acquire(orThrowIfClosed: Self.closed("first"))
            let second = Task { try await turn.acquire(orThrowIfClosed: Self.closed("second")) }
            try await Task.sleep(for: .milliseconds(50))
            turn.release()
            try await second.value
            turn.release()
        }
    }

    @Test("closing fails the waiter with the close's error and a later acquire with its own; the close's error is made only for a waiter")
    func closing() async throws {
        try await withTimeout(seconds: 60) {
            let turn = AsyncTurn()
            try await turn.acquire(orThrowIfClosed: Self.closed("holder"))
            let waiter = Task { try await turn.acquire(orThrowIfClosed: Self.closed("waiter's own")) }
            try await Task.sleep(for: .milliseconds(50))
            turn.close(Self.closed("close"))
            let waited = await #expect(throws: TLSError.self) { try await waiter.value }
            #expect(waited?.operation == "close")
            let later = await #expect(throws: TLSError.self) { try await turn.acquire(orThrowIfClosed: Self.closed("later")) }
            #expect(later?.operation == "later")

            let idle = AsyncTurn()
            let made = Atomic<Int>(0)
            idle.close({ made.add(1, ordering: .relaxed); return Self.closed("unused") }())
            #expect(made.load(ordering: .relaxed) == 0)
        }
    }
}
