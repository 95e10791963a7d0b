import Testing
@testable import AsyncNSS

@Suite("EarlyHandshakeState: early chunks, then the handshake's outcome", .timeLimit(.minutes(1)))
struct EarlyHandshakeStateTests {
    @Test("chunks come in order and are counted; completion then hands over the bytes that came with it")
    func chunksThenCompletion() {
        var state = EarlyHandshakeState(chunks: [[1, 2]])
        _ = state.deliver([3])
        _ = state.deliver([])
        #expect(state.byteCount == 3)
        guard case .data(let first)? = state.takeNext(), case .data(let second)? = state.takeNext() else {
            Issue.record("expected two chunks")
            return
        }
        #expect(first == [1, 2] && second == [3])
        #expect(state.takeNext() == nil, "nothing until the outcome")
        _ = state.finish(nil, then: [[9]])
        _ = state.deliver([4])
        #expect(state.byteCount == 3, "nothing counts early after the outcome")
        guard case .completed(let then)? = state.takeNext() else {
            Issue.record("expected the completion")
            return
        }
        #expect(then == [[9]])
        guard case .completed(let again)? = state.takeNext() else {
            Issue.record("the completion stays")
            return
        }
        #expect(again.isEmpty, "the bytes that came with it are handed over once")
    }

    @Test("a failure drops early chunks not yet read and stays")
    func failure() {
        var state = EarlyHandshakeState(chunks: [[1]])
        _ = state.finish(TLSError(kind: .closed, operation: "test", message: "gone"), then: [[2]])
        _ = state.finish(nil, then: [])
        for _ in 0..<2 {
            guard case .failed(let error)? = state.takeNext() else {
                Issue.record("expected the failure")
                return
            }
            #expect(error.kind == .closed)
        }
    }

    @Test("a waiter that looked before a change, or whose task is cancelled, does not sleep; the outcome wakes a sleeper once")
    func waiters() async {
        var state = EarlyHandshakeState(chunks: [])
        let stale = state.nextWaiterID()
        _ = state.deliver([1])
        var staleSlept = true
        await withCheckedContinuation { continuation in
            staleSlept = !state.addWaiter(stale, continuation, cancelled: false)
            if !staleSlept { continuation.resume() }
        }
        #expect(!staleSlept, "it looked before the chunk came")

        let sleeper = state.nextWaiterID()
        var slept = false
        var woken = 0
        await withCheckedContinuation { continuation in
            slept = !state.addWaiter(sleeper, continuation, cancelled: false)
            let waiters = state.finish(nil, then: [])
            woken = waiters.count
            for waiter in waiters { waiter.resume() }
            if !slept { continuation.resume() }
        }
        #expect(slept && woken == 1)
        #expect(state.removeWaiter(sleeper) == nil, "a woken waiter is gone")

        let cancelled = state.nextWaiterID()
        var cancelledSlept = true
        await withCheckedContinuation { continuation in
            cancelledSlept = !state.addWaiter(cancelled, continuation, cancelled: true)
            continuation.resume()
        }
        #expect(!cancelledSlept)
    }
}
