import Testing
@testable import AsyncNSS

/// Interruptions and interruption-only waits, which a rehandshake uses to
/// wait for the socket or for the connection's reader, whichever comes first.
@Suite("PollRegistry interruptions", .timeLimit(.minutes(1)))
struct PollRegistryInterruptTests: PollRegistryTesting {
    let t0 = ContinuousClock.now

    @Test("interrupting a registered wait returns its waiter and leaves the others")
    func interruptRegistered() {
        var registry = Registry()
        _ = register(&registry, 1, socket: 10, name: "handshake")
        _ = register(&registry, 2, socket: 10, name: "reader")
        #expect(registry.interrupt(id(1)) == "handshake")
        #expect(registry.waitCount == 1)
        #expect(registry.interrupt(id(1)) == nil, "a second interruption finds nothing")
        _ = registry.beginPoll(now: t0)
        let resumed = registry.endPoll(readySockets: [10], failed: false, now: t0).map { "\($0.0)=\($0.1)" }
        #expect(resumed == ["reader=ready"])
    }

    @Test("an interruption before the registration of an announced wait ends it at once with interrupted")
    func interruptBeforeRegister() {
        var registry = Registry()
        registry.announce(id(5))
        #expect(registry.interrupt(id(5)) == nil)
        #expect(immediateResume(register(&registry, 5, socket: 10, name: "early")) == "early=interrupted")
        #expect(registry.waitCount == 0)
        registry.forget(id(5))
        #expect(registry.rememberedCount == 0)
    }

    @Test("an interruption aimed at a wait that already returned is not remembered")
    func interruptAfterTheWaitReturned() {
        var registry = Registry()
        // A rehandshake's wait: announced, registered, ended by readiness,
        // and forgotten when it returned.
        registry.announce(id(1))
        _ = register(&registry, 1, socket: 10, name: "handshake")
        _ = registry.beginPoll(now: t0)
        #expect(summary(registry.endPoll(readySockets: [10], failed: false, now: t0)) == ["handshake=ready"])
        registry.forget(id(1))
        // The reader's interruption comes late: nothing of it may stay.
        #expect(registry.interrupt(id(1)) == nil)
        #expect(registry.rememberedCount == 0)
        // Nor of an interruption of an ID that was never announced.
        #expect(registry.interrupt(id(2)) == nil)
        #expect(registry.rememberedCount == 0)
    }

    @Test("a cancellation outranks an earlier interruption of a wait not yet registered")
    func cancellationOutranksInterruption() {
        var registry = Registry()
        _ = registry.cancel(id(6))
        _ = registry.interrupt(id(6))
        #expect(immediateResume(register(&registry, 6, socket: 10, name: "w")) == "w=cancelled")
        _ = registry.interrupt(id(7))
        _ = registry.cancel(id(7))
        #expect(immediateResume(register(&registry, 7, socket: 10, name: "v")) == "v=cancelled")
    }

    @Test("an interruption-only wait is not polled, is not woken by readiness, and keeps its deadline")
    func interruptionOnlyWait() {
        var registry = Registry()
        let deadline = t0 + .seconds(2)
        _ = register(&registry, 1, socket: 10, .interruptionOnly, deadline: deadline, name: "parked")
        let plan = registry.beginPoll(now: t0)
        #expect(registry.pollArray.isEmpty)
        #expect(plan.timeout == .seconds(2))
        #expect(registry.endPoll(readySockets: [10], failed: false, now: t0).isEmpty)

        _ = register(&registry, 2, socket: 10, name: "reader")
        _ = registry.beginPoll(now: t0)
        #expect(registry.pollArray.count == 1)
        #expect(registry.pollArray.first.map { $0.read && !$0.write } == true)
        let woken = registry.endPoll(readySockets: [10], failed: false, now: t0).map { "\($0.0)=\($0.1)" }
        #expect(woken == ["reader=ready"])

        _ = registry.beginPoll(now: deadline)
        let expired = registry.endPoll(readySockets: [], failed: false, now: deadline).map { "\($0.0)=\($0.1)" }
        #expect(expired == ["parked=timedOut"])
    }

    @Test("closing the socket ends an interruption-only wait")
    func quiesceEndsInterruptionOnlyWait() {
        var registry = Registry()
        _ = register(&registry, 1, socket: 10, .interruptionOnly, name: "parked")
        guard case .closeNow(let resumed) = registry.quiesce(10, closer: "closer") else {
            Issue.record("nothing polls the socket; it may close now")
            return
        }
        #expect(resumed.map { "\($0.0)=\($0.1)" }.sorted() == ["closer=ready", "parked=closed"])
    }
}
