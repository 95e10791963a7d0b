import Testing
@testable import AsyncNSS

/// `PollRegistry` with `Int` sockets and waiters named by a `String`.
@Suite("PollRegistry", .timeLimit(.minutes(1)))
struct PollRegistryTests: PollRegistryTesting {
    /// One `PR_PollDesc` of a plan, comparable in expectations.
    struct Entry: Hashable, CustomStringConvertible {
        var socket: Int
        var read: Bool
        var write: Bool
        var description: String { "\(socket):\(read ? "r" : "-")\(write ? "w" : "-")" }
    }

    let t0 = ContinuousClock.now

    /// The poll array the last plan left, sorted by socket (slot order depends on removals).
    func entries(_ registry: Registry) -> [Entry] {
        registry.pollArray.map { Entry(socket: $0.socket, read: $0.read, write: $0.write) }.sorted { $0.socket < $1.socket }
    }

    /// Begins a poll at `t0` and returns the poll array it planned.
    func entriesAfterBeginPoll(_ registry: inout Registry) -> [Entry] {
        _ = registry.beginPoll(now: t0)
        return entries(registry)
    }

    /// Resumed waiters as sorted `name=outcome` strings.
    func isWakePoller(_ action: Registry.RegisterAction) -> Bool {
        if case .wakePoller = action { return true }
        return false
    }

    /// Recorded, with or without a wakeup.
    func isAccepted(_ action: Registry.RegisterAction) -> Bool {
        if case .resume = action { return false }
        return true
    }

    /// `closeNow` resumes as a summary, or nil for `waitForPoll`.
    func closeNow(_ action: Registry.QuiesceAction) -> [String]? {
        if case .closeNow(let resume) = action { return summary(resume) }
        return nil
    }

    /// `waitForPoll` resumes as a summary, or nil for `closeNow`.
    func waitForPoll(_ action: Registry.QuiesceAction) -> [String]? {
        if case .waitForPoll(let resume, _) = action { return summary(resume) }
        return nil
    }

    // MARK: Registering

    @Test("register records the wait and asks to wake the poller")
    func registerWakesPoller() {
        var registry = Registry()
        #expect(registry.waitCount == 0)
        #expect(isAccepted(register(&registry, 1, socket: 10, name: "a")))
        #expect(isAccepted(register(&registry, 2, socket: 10, .write, name: "b")))
        #expect(registry.waitCount == 2)
        #expect(registry.registrations[id(1)]?.waiter == "a")
        #expect(registry.registrations[id(2)]?.interest == .write)
        #expect(!registry.isShutDown)
    }

    // MARK: Planning

    @Test("beginPoll lists each socket once with the union of its interests")
    func planMergesInterests() {
        var registry = Registry()
        register(&registry, 1, socket: 10, .read, name: "a")
        register(&registry, 2, socket: 10, .write, name: "b")
        register(&registry, 3, socket: 20, .read, name: "c")
        register(&registry, 4, socket: 20, .read, name: "d")
        register(&registry, 5, socket: 30, .write, name: "e")
        register(&registry, 6, socket: 30, .write, name: "f")
        let plan = registry.beginPoll(now: t0)
        #expect(registry.pollArray.count == 3)
        #expect(entries(registry) == [
            Entry(socket: 10, read: true, write: true),
            Entry(socket: 20, read: true, write: false),
            Entry(socket: 30, read: false, write: true),
        ])
        #expect(plan.timeout == nil)
    }

    @Test("an empty registry plans nothing and waits until woken")
    func emptyPlan() {
        var registry = Registry()
        let plan = registry.beginPoll(now: t0)
        #expect(registry.pollArray.isEmpty)
        #expect(plan.timeout == nil)
        #expect(summary(registry.endPoll(readySockets: [], failed: false, now: t0)).isEmpty)
    }

    @Test("the timeout runs to the earliest deadline")
    func timeoutFromEarliestDeadline() {
        var registry = Registry()
        register(&registry, 1, socket: 10, deadline: t0 + .seconds(5), name: "a")
        register(&registry, 2, socket: 20, deadline: nil, name: "b")
        register(&registry, 3, socket: 30, .write, deadline: t0 + .seconds(2), name: "c")
        register(&registry, 4, socket: 10, .write, deadline: t0 + .seconds(9), name: "d")
        #expect(registry.beginPoll(now: t0).timeout == .seconds(2))
        _ = registry.endPoll(readySockets: [], failed: false, now: t0)
        // Measured from `now`, not from registration.
        #expect(registry.beginPoll(now: t0 + .milliseconds(1500)).timeout == .milliseconds(500))
    }

    @Test("a deadline that already passed gives a zero timeout")
    func pastDeadlineGivesZeroTimeout() {
        var registry = Registry()
        register(&registry, 1, socket: 10, deadline: t0 + .seconds(60), name: "a")
        register(&registry, 2, socket: 20, deadline: t0 - .seconds(3), name: "b")
        #expect(registry.beginPoll(now: t0).timeout == .zero)
    }

    @Test("a deadline exactly at now gives a zero timeout")
    func deadlineAtNowGivesZeroTimeout() {
        var registry = Registry()
        register(&registry, 1, socket: 10, deadline: t0, name: "a")
        #expect(registry.beginPoll(now: t0).timeout == .zero)
    }

    // MARK: Ending a poll

    @Test("endPoll resumes every wait on a ready socket and keeps the others")
    func readySocketResumesItsWaits() {
        var registry = Registry()
        register(&registry, 1, socket: 10, .read, name: "a")
        register(&registry, 2, socket: 10, .write, name: "b")
        register(&registry, 3, socket: 20, .read, name: "c")
        _ = registry.beginPoll(now: t0)
        let resumed = registry.endPoll(readySockets: [10], failed: false, now: t0)
        #expect(summary(resumed) == ["a=ready", "b=ready"])
        #expect(registry.waitCount == 1)
        #expect(registry.registrations[id(3)]?.waiter == "c")

        // The survivor is polled again, alone.
        _ = registry.beginPoll(now: t0)
        #expect(entries(registry) == [Entry(socket: 20, read: true, write: false)])
        #expect(summary(registry.endPoll(readySockets: [20], failed: false, now: t0)) == ["c=ready"])
        #expect(registry.waitCount == 0)
    }

    @Test("endPoll with no ready socket and no deadline resumes nothing")
    func quietPollResumesNothing() {
        var registry = Registry()
        register(&registry, 1, socket: 10, name: "a")
        register(&registry, 2, socket: 20, deadline: t0 + .seconds(10), name: "b")
        _ = registry.beginPoll(now: t0)
        #expect(registry.endPoll(readySockets: [], failed: false, now: t0 + .seconds(1)).isEmpty)
        #expect(registry.waitCount == 2)
    }

    @Test("a failed poll resumes every polled wait so that its task sees the error")
    func failedPollResumesAllPolled() {
        var registry = Registry()
        register(&registry, 1, socket: 10, .read, name: "a")
        register(&registry, 2, socket: 20, .write, name: "b")
        register(&registry, 3, socket: 30, .read, deadline: t0 + .seconds(30), name: "c")
        _ = registry.beginPoll(now: t0)
        let resumed = registry.endPoll(readySockets: [], failed: true, now: t0)
        #expect(summary(resumed) == ["a=ready", "b=ready", "c=ready"])
        #expect(registry.waitCount == 0)
    }

    @Test("waits whose deadline passed end with timedOut; later deadlines stay")
    func passedDeadlinesTimeOut() {
        var registry = Registry()
        register(&registry, 1, socket: 10, deadline: t0 + .seconds(1), name: "a")
        register(&registry, 2, socket: 20, deadline: t0 + .seconds(2), name: "b")
        register(&registry, 3, socket: 30, deadline: t0 + .seconds(10), name: "c")
        register(&registry, 4, socket: 40, deadline: nil, name: "d")
        _ = registry.beginPoll(now: t0)
        let resumed = registry.endPoll(readySockets: [], failed: false, now: t0 + .seconds(2))
        // A deadline equal to now has passed.
        #expect(summary(resumed) == ["a=timedOut", "b=timedOut"])
        #expect(Set(registry.registrations.values.map(\.waiter)) == ["c", "d"])
        #expect(registry.beginPoll(now: t0 + .seconds(2)).timeout == .seconds(8))
    }

    @Test("a ready socket wins over a passed deadline: the task retries")
    func readyBeatsTimeout() {
        var registry = Registry()
        register(&registry, 1, socket: 10, deadline: t0 + .seconds(1), name: "a")
        _ = registry.beginPoll(now: t0)
        #expect(summary(registry.endPoll(readySockets: [10], failed: false, now: t0 + .seconds(5))) == ["a=ready"])
    }

    @Test("a wait registered during a poll on a socket outside the plan survives endPoll")
    func registrationDuringPollSurvives() {
        var registry = Registry()
        register(&registry, 1, socket: 10, name: "a")
        _ = registry.beginPoll(now: t0)
        #expect(entries(registry).map(\.socket) == [10])

        #expect(isAccepted(register(&registry, 2, socket: 20, .write, name: "late")))
        #expect(summary(registry.endPoll(readySockets: [10], failed: false, now: t0)) == ["a=ready"])
        #expect(registry.registrations[id(2)]?.waiter == "late")

        // It also survives a failed poll that did not include it.
        register(&registry, 3, socket: 10, name: "b")
        _ = registry.beginPoll(now: t0)
        #expect(entries(registry) == [
            Entry(socket: 10, read: true, write: false),
            Entry(socket: 20, read: false, write: true),
        ])
        register(&registry, 4, socket: 50, name: "later")
        #expect(summary(registry.endPoll(readySockets: [], failed: true, now: t0)) == ["b=ready", "late=ready"])
        #expect(registry.waitCount == 1)
        #expect(registry.registrations[id(4)]?.waiter == "later")

        // And the next plan includes it.
        #expect(entriesAfterBeginPoll(&registry) == [Entry(socket: 50, read: true, write: false)])
    }

    // MARK: Cancelling

    @Test("cancelling a registered wait returns its waiter and removes it")
    func cancelRegistered() {
        var registry = Registry()
        register(&registry, 1, socket: 10, name: "a")
        register(&registry, 2, socket: 10, .write, name: "b")
        #expect(registry.cancel(id(1)) == "a")
        #expect(registry.waitCount == 1)
        #expect(registry.registrations[id(1)] == nil)
        // A second cancel finds nothing to return.
        #expect(registry.cancel(id(1)) == nil)

        _ = registry.beginPoll(now: t0)
        #expect(entries(registry) == [Entry(socket: 10, read: false, write: true)])
        #expect(summary(registry.endPoll(readySockets: [10], failed: false, now: t0)) == ["b=ready"])
    }

    @Test("a cancellation that arrives before the registration refuses it with cancelled")
    func cancelBeforeRegister() {
        var registry = Registry()
        #expect(registry.cancel(id(7)) == nil)
        let action = register(&registry, 7, socket: 10, name: "early")
        #expect(immediateResume(action) == "early=cancelled")
        #expect(registry.waitCount == 0)
        #expect(entriesAfterBeginPoll(&registry).isEmpty)
        // The early cancellation was used up: another wait is not affected.
        #expect(isAccepted(register(&registry, 8, socket: 10, name: "other")))
    }

    @Test("forget drops an early cancellation whose registration never came")
    func forgetDropsEarlyCancellation() {
        var registry = Registry()
        #expect(registry.cancel(id(3)) == nil)
        registry.forget(id(3))
        #expect(isAccepted(register(&registry, 3, socket: 10, name: "a")))
        #expect(registry.waitCount == 1)
        // Forgetting an ID that was never cancelled changes nothing.
        registry.forget(id(99))
        #expect(registry.registrations[id(3)]?.waiter == "a")
    }

    // MARK: Quiescing

    @Test("quiesce with no poll running closes now, ending the socket's waits with closed")
    func quiesceWithoutPoll() {
        var registry = Registry()
        register(&registry, 1, socket: 10, .read, name: "a")
        register(&registry, 2, socket: 10, .write, name: "b")
        register(&registry, 3, socket: 20, .read, name: "c")
        let action = registry.quiesce(10, closer: "closer")
        #expect(closeNow(action) == ["a=closed", "b=closed", "closer=ready"])
        #expect(registry.waitCount == 1)
        #expect(registry.registrations[id(3)]?.waiter == "c")
        // The closed socket is no longer polled.
        #expect(entriesAfterBeginPoll(&registry).map(\.socket) == [20])
    }

    @Test("quiesce of a socket with no waits closes now with just the closer")
    func quiesceIdleSocket() {
        var registry = Registry()
        #expect(closeNow(registry.quiesce(10, closer: "closer")) == ["closer=ready"])
    }

    @Test("quiesce while the running poll includes the socket waits for endPoll")
    func quiesceDuringPollWaits() {
        var registry = Registry()
        register(&registry, 1, socket: 10, name: "a")
        register(&registry, 2, socket: 20, name: "b")
        _ = registry.beginPoll(now: t0)

        let action = registry.quiesce(10, closer: "closer")
        #expect(waitForPoll(action) == ["a=closed"])
        #expect(registry.waitCount == 1)

        let resumed = registry.endPoll(readySockets: [10, 20], failed: false, now: t0)
        #expect(summary(resumed) == ["b=ready", "closer=ready"])

        // The closer is resumed once, not by the next poll too.
        register(&registry, 3, socket: 20, name: "c")
        _ = registry.beginPoll(now: t0)
        #expect(summary(registry.endPoll(readySockets: [20], failed: false, now: t0)) == ["c=ready"])
    }

    @Test("two closers waiting for the same poll are both resumed by endPoll")
    func twoClosersDuringPoll() {
        var registry = Registry()
        register(&registry, 1, socket: 10, name: "a")
        register(&registry, 2, socket: 20, name: "b")
        _ = registry.beginPoll(now: t0)
        #expect(waitForPoll(registry.quiesce(10, closer: "closer1")) == ["a=closed"])
        #expect(waitForPoll(registry.quiesce(20, closer: "closer2")) == ["b=closed"])
        #expect(summary(registry.endPoll(readySockets: [], failed: false, now: t0)) == ["closer1=ready", "closer2=ready"])
    }

    @Test("quiesce of a socket outside the running poll closes now")
    func quiesceOutsidePollClosesNow() {
        var registry = Registry()
        register(&registry, 1, socket: 10, name: "a")
        _ = registry.beginPoll(now: t0)
        register(&registry, 2, socket: 20, name: "late")
        #expect(closeNow(registry.quiesce(20, closer: "closer")) == ["closer=ready", "late=closed"])
        #expect(closeNow(registry.quiesce(30, closer: "closer2")) == ["closer2=ready"])
        #expect(summary(registry.endPoll(readySockets: [10], failed: false, now: t0)) == ["a=ready"])
    }

    @Test("quiesce after the poll ended closes now")
    func quiesceAfterPollClosesNow() {
        var registry = Registry()
        register(&registry, 1, socket: 10, name: "a")
        _ = registry.beginPoll(now: t0)
        _ = registry.endPoll(readySockets: [], failed: false, now: t0)
        #expect(closeNow(registry.quiesce(10, closer: "closer")) == ["a=closed", "closer=ready"])
    }

    // MARK: Shutting down

    @Test("shutDown resumes every wait; a closer waits for the running poll to return; later registrations are refused")
    func shutDownEndsEverything() {
        var registry = Registry()
        register(&registry, 1, socket: 10, name: "a")
        register(&registry, 2, socket: 20, .write, deadline: t0 + .seconds(5), name: "b")
        register(&registry, 3, socket: 30, name: "c")
        _ = registry.beginPoll(now: t0)
        #expect(waitForPoll(registry.quiesce(30, closer: "closer")) == ["c=closed"])

        // PR_Poll still has socket 30 in its array: the closer must not go on
        // to PR_Close it before the poll returns.
        let resumed = registry.shutDown()
        #expect(summary(resumed) == ["a=shutDown", "b=shutDown"])
        #expect(registry.isShutDown)
        // A closer that comes while that poll still runs waits for it too,
        // whichever socket it closes.
        #expect(registry.tracks(10))
        #expect(waitForPoll(registry.quiesce(10, closer: "late in poll")) == [])
        #expect(summary(registry.endPoll(readySockets: [30], failed: false, now: t0)) == ["closer=ready", "late in poll=ready"])
        #expect(registry.waitCount == 0)

        #expect(immediateResume(register(&registry, 4, socket: 10, name: "after")) == "after=shutDown")
        #expect(registry.waitCount == 0)
        // Shut down wins over an early cancellation.
        #expect(registry.cancel(id(5)) == nil)
        #expect(immediateResume(register(&registry, 5, socket: 10, name: "cancelled")) == "cancelled=shutDown")
        // Nothing is left to resume.
        #expect(registry.shutDown().isEmpty)
        #expect(closeNow(registry.quiesce(10, closer: "late closer")) == ["late closer=ready"])
    }

    // MARK: Exactly once

    /// Applies random operations and checks that no waiter is resumed twice,
    /// that `waitCount` matches a model, and that after `shutDown` every waiter
    /// handed to the registry was resumed exactly once.
    @Test("every waiter is resumed exactly once", arguments: 0..<24)
    func resumedExactlyOnce(seed: UInt64) {
        var random = UnitSeededGenerator(seed: 0xA5A5_0000 + seed)
        var registry = Registry()
        var resumeCount: [String: Int] = [:]
        var given: Set<String> = []
        var live: Set<String> = []                 // registered, not yet resumed
        var idOfWaiter: [String: PollWaitID] = [:]
        var unregistered: [PollWaitID] = []        // allocated IDs not yet registered
        var nextID: UInt64 = 0
        var nextName = 0
        var clock = t0
        var polling: Set<Int>? = nil
        var outcomesSeen: [PollOutcome: Int] = [:]
        var waitedForPoll = 0
        var refusedAsCancelled = 0
        var mirror = PollArrayMirror()

        func note(_ resumed: [(String, PollOutcome)], _ context: String) {
            for (waiter, outcome) in resumed {
                outcomesSeen[outcome, default: 0] += 1
                resumeCount[waiter, default: 0] += 1
                #expect(resumeCount[waiter] == 1, "seed \(seed): \(waiter) resumed again (\(outcome)) by \(context)")
                #expect(given.contains(waiter), "seed \(seed): \(waiter) was never given to the registry")
                live.remove(waiter)
            }
        }
        func newName(_ prefix: String) -> String {
            nextName += 1
            let name = "\(prefix)\(nextName)"
            given.insert(name)
            return name
        }

        for step in 0..<400 {
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<30: // register: a fresh ID or one allocated earlier (maybe cancelled early)
                let waitID = nextWaitID(reusing: &unregistered, counter: &nextID, using: &random)
                let name = newName("w")
                idOfWaiter[name] = waitID
                let deadline: ContinuousClock.Instant? = Bool.random(using: &random)
                    ? clock + .milliseconds(Int.random(in: -200...800, using: &random)) : nil
                let interests: [PollInterest] = [.read, .write, .read, .write, .interruptionOnly]
                let action = registry.register(
                    waitID, socket: Int.random(in: 0..<4, using: &random),
                    interest: interests.randomElement(using: &random) ?? .read, deadline: deadline, waiter: name
                )
                switch action {
                case .wakePoller:
                    #expect(polling != nil, "seed \(seed): a wakeup asked for between polls")
                    live.insert(name)
                case .registered: live.insert(name)
                case .resume(let waiter, let outcome):
                    #expect(waiter == name)
                    #expect(outcome == .cancelled || outcome == .interrupted || outcome == .shutDown)
                    if outcome == .cancelled { refusedAsCancelled += 1 }
                    note([(waiter, outcome)], "register at step \(step)")
                }
            case 30..<38: // allocate an ID whose registration is still to come
                nextID += 1
                unregistered.append(PollWaitID(raw: nextID))
                registry.announce(PollWaitID(raw: nextID))
            case 38..<50: // cancel or interrupt a registered wait, an unregistered ID, or one already resumed
                let candidates = Array(idOfWaiter.keys).sorted()
                let interrupting = Int.random(in: 0..<3, using: &random) == 0
                if !unregistered.isEmpty, Bool.random(using: &random) {
                    let waitID = unregistered[Int.random(in: 0..<unregistered.count, using: &random)]
                    #expect((interrupting ? registry.interrupt(waitID) : registry.cancel(waitID)) == nil)
                } else if let name = candidates.randomElement(using: &random), let waitID = idOfWaiter[name] {
                    let wasLive = live.contains(name)
                    let waiter = interrupting ? registry.interrupt(waitID) : registry.cancel(waitID)
                    #expect((waiter != nil) == wasLive, "seed \(seed): cancel or interrupt of \(name) at step \(step)")
                    if let waiter {
                        #expect(waiter == name)
                        note([(waiter, interrupting ? .interrupted : .cancelled)], "cancel or interrupt at step \(step)")
                    }
                }
            case 50..<53: // forget an allocated ID (its registration may still come)
                if let waitID = unregistered.randomElement(using: &random) { registry.forget(waitID) }
            case 53..<70: // begin or end a poll
                clock += .milliseconds(Int.random(in: 0...300, using: &random))
                if let polled = polling {
                    let ready = polled.sorted().filter { _ in Bool.random(using: &random) }
                    let failed = Int.random(in: 0..<10, using: &random) == 0
                    note(registry.endPoll(readySockets: Array(ready), failed: failed, now: clock), "endPoll at step \(step)")
                    polling = nil
                } else {
                    let plan = registry.beginPoll(now: clock)
                    mirror.apply(plan)
                    let sockets = registry.pollArray.map(\.socket)
                    #expect(mirror.entries == registry.pollArray.map { Entry(socket: $0.socket, read: $0.read, write: $0.write) },
                            "seed \(seed): the poll thread's copy differs from the registry's array at step \(step)")
                    #expect(Set(sockets).count == sockets.count, "seed \(seed): a socket is planned twice")
                    let polledSockets = Set(registry.registrations.values.filter { $0.interest != .interruptionOnly }.map(\.socket))
                    #expect(Set(sockets) == polledSockets, "seed \(seed): the plan does not match the read and write waits")
                    if let timeout = plan.timeout { #expect(timeout >= .zero) }
                    polling = Set(sockets)
                }
            case 70..<82: // quiesce a socket
                let closer = newName("closer")
                switch registry.quiesce(Int.random(in: 0..<4, using: &random), closer: closer) {
                case .closeNow(let resumed):
                    #expect(resumed.contains { $0.0 == closer && $0.1 == .ready })
                    note(resumed, "quiesce (closeNow) at step \(step)")
                case .waitForPoll(let resumed, _):
                    waitedForPoll += 1
                    #expect(polling != nil, "seed \(seed): waitForPoll with no poll running")
                    #expect(!resumed.contains { $0.0 == closer })
                    note(resumed, "quiesce (waitForPoll) at step \(step)")
                }
            default: // the clock moves on without a poll
                clock += .milliseconds(Int.random(in: 0...100, using: &random))
            }
            #expect(registry.waitCount == live.count, "seed \(seed): waitCount after step \(step)")
            let problems = registry.invariantViolations()
            #expect(problems.isEmpty, "seed \(seed): after step \(step): \(problems)")
        }

        note(registry.shutDown(), "shutDown")
        // Closers of a poll that was running go on when it returns.
        if polling != nil { note(registry.endPoll(readySockets: [], failed: false, now: clock), "endPoll after shutDown") }
        #expect(registry.waitCount == 0)
        // After shutdown, waiters are still resumed once, at once.
        for _ in 0..<10 {
            nextID += 1
            let name = newName("after")
            if case .resume(let waiter, let outcome) = registry.register(PollWaitID(raw: nextID), socket: 1, interest: .read, deadline: nil, waiter: name) {
                #expect(outcome == .shutDown)
                note([(waiter, outcome)], "register after shutDown")
            } else {
                Issue.record("seed \(seed): a registration after shutDown was accepted")
            }
        }
        let closer = newName("closer")
        if case .closeNow(let resumed) = registry.quiesce(1, closer: closer) {
            note(resumed, "quiesce after shutDown")
        } else {
            Issue.record("seed \(seed): quiesce after shutDown waits for a poll")
        }

        #expect(live.isEmpty)
        let missing = given.filter { resumeCount[$0] == nil }.sorted()
        #expect(missing.isEmpty, "seed \(seed): never resumed: \(missing)")
        #expect(resumeCount.values.allSatisfy { $0 == 1 })
        // The run reached every way a wait can end.
        for outcome in [PollOutcome.ready, .timedOut, .cancelled, .closed, .shutDown] {
            #expect(outcomesSeen[outcome, default: 0] > 0, "seed \(seed): no wait ended with \(outcome)")
        }
        #expect(waitedForPoll > 0, "seed \(seed): no closer waited for a poll")
        #expect(refusedAsCancelled > 0, "seed \(seed): no registration came after its cancellation")
    }
}
