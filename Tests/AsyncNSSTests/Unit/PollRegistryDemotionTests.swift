import Testing
@testable import AsyncNSS

/// Demotion from a hot registry to a cold one: when a batch is due, what
/// moves, what the cold registry does with it, and that cancellation and
/// interruption find a wait on either side.
@Suite("PollRegistry demotion (hot and cold)", .timeLimit(.minutes(1)))
struct PollRegistryDemotionTests: PollRegistryTesting {
    typealias Entry = PollRegistryTests.Entry

    let t0 = ContinuousClock.now
    let window: Duration = .seconds(1)

    func ms(_ value: Int) -> ContinuousClock.Instant { t0 + .milliseconds(value) }

    func hot() -> Registry { Registry(demotionBatchWindow: window) }

    func closeNow(_ action: Registry.QuiesceAction) -> [String]? {
        if case .closeNow(let resume) = action { return summary(resume) }
        return nil
    }

    func names(_ moved: [Registry.Demotion]) -> [String] {
        moved.map { "\($0.registration.waiter)" }.sorted()
    }

    @discardableResult
    func registerDemotable(
        _ registry: inout Registry, _ raw: UInt64, socket: Int, _ interest: PollInterest = .read,
        deadline: ContinuousClock.Instant? = nil, demoteAt: ContinuousClock.Instant, name: String
    ) -> Registry.RegisterAction {
        registry.register(id(raw), socket: socket, interest: interest, deadline: deadline, waiter: name, demoteAt: demoteAt)
    }

    // MARK: When a batch is due

    @Test("a batch is due one window after the earliest demotion time, and the plan's timeout says so")
    func batchDueAfterWindow() {
        var registry = hot()
        registerDemotable(&registry, 1, socket: 10, demoteAt: ms(1000), name: "a")
        let plan = registry.beginPoll(now: t0)
        #expect(plan.timeout == .milliseconds(2000))
        #expect(summary(registry.endPoll(readySockets: [], failed: false, now: ms(1500))).isEmpty)
        #expect(registry.takeDueDemotions(now: ms(1500)).isEmpty)
        #expect(registry.waitCount == 1)
        #expect(names(registry.takeDueDemotions(now: ms(2000))) == ["a"])
        #expect(registry.waitCount == 0)
        // The socket leaves the array at the next plan.
        let next = registry.beginPoll(now: ms(2000))
        #expect(next.count == 0)
        #expect(next.timeout == nil)
        #expect(registry.invariantViolations().isEmpty)
    }

    @Test("a due batch takes every wait whose demotion time passed, and only those")
    func batchTakesAllPassed() {
        var registry = hot()
        registerDemotable(&registry, 1, socket: 10, demoteAt: ms(1000), name: "a")
        registerDemotable(&registry, 2, socket: 11, .write, demoteAt: ms(1900), name: "b")
        registerDemotable(&registry, 3, socket: 12, demoteAt: ms(2100), name: "c")
        register(&registry, 4, socket: 13, name: "never")
        #expect(names(registry.takeDueDemotions(now: ms(2000))) == ["a", "b"])
        #expect(registry.waitCount == 2)
        // The next batch waits for c's demotion time plus a window.
        #expect(registry.beginPoll(now: ms(2000)).timeout == .milliseconds(1100))
        #expect(registry.takeDueDemotions(now: ms(3000)).isEmpty)
        #expect(names(registry.takeDueDemotions(now: ms(3100))) == ["c"])
        #expect(registry.waitCount == 1)
        #expect(registry.invariantViolations().isEmpty)
    }

    /// A hot registry whose waits may move 750 ms before their demotion
    /// time (one second after they register): from 250 ms old.
    func busyHot() -> Registry { Registry(demotionBatchWindow: window, earlyDemotionLead: .milliseconds(750)) }

    /// Runs `count` polls that find nothing ready, each scanning the whole array.
    func poll(_ registry: inout Registry, times count: Int, at now: ContinuousClock.Instant) {
        for _ in 0..<count {
            _ = registry.beginPoll(now: now)
            _ = registry.endPoll(readySockets: [], failed: false, now: now)
        }
    }

    @Test("once the polls have scanned a batch's cost, waits from the minimum age on move early, and the count starts again")
    func scanningPaysForAnEarlyBatch() {
        var registry = busyHot()
        registerDemotable(&registry, 1, socket: 10, demoteAt: ms(1000), name: "old")
        registerDemotable(&registry, 2, socket: 11, demoteAt: ms(1200), name: "young")
        // Not paid for yet: 4 polls of 2 entries against a cost of 10.
        poll(&registry, times: 4, at: ms(300))
        #expect(registry.scannedSinceBatch == 8)
        #expect(registry.takeDueDemotions(now: ms(300), batchCost: 10).isEmpty)
        // Paid for: "old" is 300 ms old and goes; "young" (100 ms) stays.
        poll(&registry, times: 1, at: ms(300))
        #expect(names(registry.takeDueDemotions(now: ms(300), batchCost: 10)) == ["old"])
        #expect(registry.scannedSinceBatch == 0)
        // "young" is old enough now, but the next batch must be paid for again.
        #expect(registry.takeDueDemotions(now: ms(500), batchCost: 10).isEmpty)
        poll(&registry, times: 10, at: ms(500))
        #expect(names(registry.takeDueDemotions(now: ms(500), batchCost: 10)) == ["young"])
        #expect(registry.waitCount == 0)
        #expect(registry.invariantViolations().isEmpty)
    }

    @Test("scanning pays for nothing while every wait is younger than the minimum age, and the time rule still applies")
    func scanningMovesNoYoungWait() {
        var registry = busyHot()
        registerDemotable(&registry, 1, socket: 10, demoteAt: ms(1000), name: "a")
        poll(&registry, times: 100, at: ms(200))
        #expect(registry.takeDueDemotions(now: ms(200), batchCost: 10).isEmpty)
        #expect(registry.waitCount == 1)
        // Without the scanning, a batch waits for the window, as before.
        #expect(registry.takeDueDemotions(now: ms(1999), batchCost: .max).isEmpty)
        #expect(names(registry.takeDueDemotions(now: ms(2000), batchCost: .max)) == ["a"])
        #expect(registry.invariantViolations().isEmpty)
    }

    @Test("polls count toward a batch only while some wait could move")
    func scanningCountsOnlyWithDemotableWaits() {
        var registry = busyHot()
        register(&registry, 1, socket: 10, name: "not demotable")
        registerDemotable(&registry, 2, socket: 11, .interruptionOnly, demoteAt: ms(0), name: "parked")
        poll(&registry, times: 50, at: ms(100))
        #expect(registry.scannedSinceBatch == 0)
        registerDemotable(&registry, 3, socket: 12, demoteAt: ms(1100), name: "demotable")
        poll(&registry, times: 3, at: ms(200))
        #expect(registry.scannedSinceBatch == 6)
        // The demotable wait ends: the next look finds nothing to move and forgets the scanning.
        #expect(registry.cancel(id(3)) == "demotable")
        #expect(registry.takeDueDemotions(now: ms(400), batchCost: 1).isEmpty)
        #expect(registry.scannedSinceBatch == 0)
        #expect(registry.invariantViolations().isEmpty)
    }

    @Test("waits that ended are not demoted and no longer shorten the timeout")
    func endedWaitsDoNotDemote() {
        var registry = hot()
        registerDemotable(&registry, 1, socket: 10, demoteAt: ms(100), name: "cancelled")
        registerDemotable(&registry, 2, socket: 11, demoteAt: ms(200), name: "interrupted")
        registerDemotable(&registry, 3, socket: 12, demoteAt: ms(300), name: "ready")
        registerDemotable(&registry, 4, socket: 13, demoteAt: ms(400), name: "closed")
        registerDemotable(&registry, 5, socket: 14, demoteAt: ms(500), name: "kept")
        #expect(registry.cancel(id(1)) == "cancelled")
        #expect(registry.interrupt(id(2)) == "interrupted")
        _ = registry.beginPoll(now: t0)
        #expect(summary(registry.endPoll(readySockets: [12], failed: false, now: ms(10))) == ["ready=ready"])
        #expect(closeNow(registry.quiesce(13, closer: "closer")) == ["closed=closed", "closer=ready"])
        #expect(registry.beginPoll(now: ms(10)).timeout == ms(1500) - ms(10))
        _ = registry.endPoll(readySockets: [], failed: false, now: ms(1500))
        #expect(names(registry.takeDueDemotions(now: ms(1500))) == ["kept"])
        #expect(registry.invariantViolations().isEmpty)
    }

    @Test("a deadline earlier than the batch still sets the timeout, and a timed-out wait is not demoted")
    func deadlineBeforeDemotion() {
        var registry = hot()
        registerDemotable(&registry, 1, socket: 10, deadline: ms(300), demoteAt: ms(100), name: "a")
        #expect(registry.beginPoll(now: t0).timeout == .milliseconds(300))
        #expect(summary(registry.endPoll(readySockets: [], failed: false, now: ms(1200))) == ["a=timedOut"])
        #expect(registry.takeDueDemotions(now: ms(1200)).isEmpty)
        #expect(registry.invariantViolations().isEmpty)
    }

    @Test("interruption-only waits are never demoted")
    func interruptionOnlyStays() {
        var registry = hot()
        registerDemotable(&registry, 1, socket: 10, .interruptionOnly, demoteAt: ms(0), name: "parked")
        #expect(registry.beginPoll(now: t0).timeout == nil)
        #expect(registry.takeDueDemotions(now: ms(10_000)).isEmpty)
        #expect(registry.waitCount == 1)
        #expect(registry.invariantViolations().isEmpty)
    }

    @Test("a demoted wait leaves the hot array; a hot quiesce then closes at once and ends nothing")
    func demotedWaitLeavesHot() {
        var registry = hot()
        registerDemotable(&registry, 1, socket: 10, demoteAt: ms(0), name: "a")
        _ = registry.beginPoll(now: t0)
        _ = registry.endPoll(readySockets: [], failed: false, now: ms(1000))
        #expect(names(registry.takeDueDemotions(now: ms(1000))) == ["a"])
        #expect(registry.tracks(10))          // the slot waits for the next plan
        _ = registry.beginPoll(now: ms(1000))
        #expect(!registry.tracks(10))
        #expect(closeNow(registry.quiesce(10, closer: "closer")) == ["closer=ready"])
    }

    // MARK: The cold side

    @Test("adopt keeps the ID, deadline and waiter, and the cold registry polls and times the wait")
    func adoptKeepsTheWait() {
        var hot = hot()
        var cold = Registry()
        registerDemotable(&hot, 1, socket: 10, deadline: ms(5000), demoteAt: ms(0), name: "a")
        registerDemotable(&hot, 2, socket: 11, .write, demoteAt: ms(0), name: "b")
        let moved = hot.takeDueDemotions(now: ms(1000))
        #expect(moved.map(\.id).sorted() == [id(1), id(2)])
        let adopted = cold.adopt(moved)
        #expect(adopted.resume.isEmpty)
        #expect(!adopted.wakePoller)        // no poll runs: the plan picks them up
        #expect(cold.waitCount == 2)
        #expect(cold.registrations[id(1)]?.deadline == PollInstant(ms(5000)))
        #expect(cold.registrations[id(1)]?.demoteAt == nil)
        let plan = cold.beginPoll(now: ms(1000))
        #expect(plan.timeout == .milliseconds(4000))
        #expect(cold.pollArray.map { Entry(socket: $0.socket, read: $0.read, write: $0.write) }.sorted { $0.socket < $1.socket }
                == [Entry(socket: 10, read: true, write: false), Entry(socket: 11, read: false, write: true)])
        #expect(summary(cold.endPoll(readySockets: [11], failed: false, now: ms(1100))) == ["b=ready"])
        _ = cold.beginPoll(now: ms(1100))
        #expect(summary(cold.endPoll(readySockets: [], failed: false, now: ms(5000))) == ["a=timedOut"])
        #expect(cold.invariantViolations().isEmpty)
        #expect(hot.invariantViolations().isEmpty)
    }

    @Test("adoption during a cold poll wakes it once; after shutDown it is refused")
    func adoptWakesAndRefuses() {
        var hot = hot()
        var cold = Registry()
        for raw in UInt64(1)...3 {
            registerDemotable(&hot, raw, socket: Int(raw), demoteAt: ms(0), name: "w\(raw)")
        }
        var moved = hot.takeDueDemotions(now: ms(1000)).sorted { $0.id < $1.id }
        let first = [moved.removeFirst()]
        _ = cold.beginPoll(now: ms(1000))
        #expect(cold.adopt(first).wakePoller)
        #expect(!cold.adopt([moved.removeFirst()]).wakePoller)
        _ = cold.endPoll(readySockets: [], failed: false, now: ms(1000))
        #expect(summary(cold.shutDown()) == ["w1=shutDown", "w2=shutDown"])
        let refused = cold.adopt(moved)
        #expect(summary(refused.resume) == ["w3=shutDown"])
        #expect(!refused.wakePoller)
    }

    @Test("cancel and interrupt find a demoted wait on the cold side; if it is nowhere, the hot side remembers")
    func endFindsWaitAnywhere() {
        var hot = hot()
        var cold = Registry()
        registerDemotable(&hot, 1, socket: 10, demoteAt: ms(0), name: "a")
        registerDemotable(&hot, 2, socket: 11, demoteAt: ms(0), name: "b")
        registerDemotable(&hot, 3, socket: 12, demoteAt: ms(5000), name: "stays hot")
        _ = cold.adopt(hot.takeDueDemotions(now: ms(1000)))
        #expect(cold.waitCount == 2)
        #expect(hot.cancel(id(1)) { cold.endIfRegistered($0) } == "a")
        #expect(hot.interrupt(id(2)) { cold.endIfRegistered($0) } == "b")
        #expect(hot.cancel(id(3)) { cold.endIfRegistered($0) } == "stays hot")
        #expect(cold.waitCount == 0)
        // An announced ID that is on neither side: remembered by the hot
        // side only, where its registration would come.
        hot.announce(id(4))
        #expect(hot.interrupt(id(4)) { cold.endIfRegistered($0) } == nil)
        #expect(cold.endIfRegistered(id(4)) == nil)
        #expect(immediateResume(register(&hot, 4, socket: 13, name: "late")) == "late=interrupted")
        #expect(hot.invariantViolations().isEmpty)
        #expect(cold.invariantViolations().isEmpty)
    }

    // MARK: Exactly once, across both

    /// Random operations on a hot and a cold registry driven the way
    /// `PollLoop` drives them: registrations on the hot side with demotion
    /// times, cancellation and interruption through `elsewhere`, quiesce of
    /// the hot side then the cold side, polls of both, and demotion batches
    /// after each hot poll. Checks after every step that every waiter is
    /// resumed at most once, that the waits of the two sides add up to a
    /// model, and that both registries are consistent; after `shutDown`, that
    /// every waiter was resumed exactly once.
    @Test("every waiter is resumed exactly once across the hot and the cold registry", arguments: 0..<24)
    func resumedExactlyOnceAcrossBoth(seed: UInt64) {
        var random = UnitSeededGenerator(seed: 0xC01D_0000 + seed)
        var hot = Registry(demotionBatchWindow: .milliseconds(200))
        var cold = Registry()
        var resumeCount: [String: Int] = [:]
        var given: Set<String> = []
        var live: Set<String> = []
        var idOfWaiter: [String: PollWaitID] = [:]
        var unregistered: [PollWaitID] = []
        var nextID: UInt64 = 0
        var nextName = 0
        var clock = t0
        var hotPolling: Set<Int>? = nil
        var coldPolling: Set<Int>? = nil
        var hotMirror = PollArrayMirror()
        var coldMirror = PollArrayMirror()
        var demoted = 0
        var endedElsewhere = 0
        var endedCold: [PollOutcome: Int] = [:]
        let socketCount = [4, 16, 64][Int(seed % 3)]

        func note(_ resumed: [(String, PollOutcome)], _ context: String, cold isCold: Bool = false) {
            for (waiter, outcome) in resumed {
                resumeCount[waiter, default: 0] += 1
                #expect(resumeCount[waiter] == 1, "seed \(seed): \(waiter) resumed again (\(outcome)) by \(context)")
                #expect(given.contains(waiter), "seed \(seed): \(waiter) was never given to the registries")
                live.remove(waiter)
                if isCold, !waiter.hasPrefix("closer") { endedCold[outcome, default: 0] += 1 }
            }
        }
        func newName(_ prefix: String) -> String {
            nextName += 1
            let name = "\(prefix)\(nextName)"
            given.insert(name)
            return name
        }
        func plan(_ registry: inout Registry, _ mirror: inout PollArrayMirror, _ step: Int) -> Set<Int> {
            let plan = registry.beginPoll(now: clock)
            mirror.apply(plan)
            #expect(mirror.entries == registry.pollArray.map { Entry(socket: $0.socket, read: $0.read, write: $0.write) },
                    "seed \(seed): a poll thread's copy differs at step \(step)")
            if let timeout = plan.timeout { #expect(timeout >= .zero) }
            return Set(registry.pollArray.map(\.socket))
        }

        for step in 0..<600 {
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<28: // register on the hot side
                let waitID = nextWaitID(reusing: &unregistered, counter: &nextID, using: &random)
                let name = newName("w")
                idOfWaiter[name] = waitID
                let deadline: ContinuousClock.Instant? = Int.random(in: 0..<3, using: &random) == 0
                    ? clock + .milliseconds(Int.random(in: -100...1500, using: &random)) : nil
                let interests: [PollInterest] = [.read, .write, .read, .interruptionOnly]
                let action = hot.register(
                    waitID, socket: Int.random(in: 0..<socketCount, using: &random),
                    interest: interests.randomElement(using: &random) ?? .read, deadline: deadline, waiter: name,
                    demoteAt: clock + .milliseconds(Int.random(in: 0...400, using: &random))
                )
                switch action {
                case .wakePoller, .registered: live.insert(name)
                case .resume(let waiter, let outcome):
                    #expect(outcome == .cancelled || outcome == .interrupted)
                    note([(waiter, outcome)], "register at step \(step)")
                }
            case 28..<34: // an ID whose registration is still to come
                nextID += 1
                unregistered.append(PollWaitID(raw: nextID))
                hot.announce(PollWaitID(raw: nextID))
            case 34..<46: // cancel or interrupt, wherever the wait is
                let interrupting = Bool.random(using: &random)
                let waitID: PollWaitID
                var expected: String? = nil
                if !unregistered.isEmpty, Int.random(in: 0..<4, using: &random) == 0 {
                    waitID = unregistered[Int.random(in: 0..<unregistered.count, using: &random)]
                } else if Bool.random(using: &random),
                          let demotedID = cold.registrations.keys.sorted().randomElement(using: &random),
                          let name = idOfWaiter.first(where: { $0.value == demotedID })?.key {
                    waitID = demotedID
                    expected = name
                } else if let name = Array(idOfWaiter.keys).sorted().randomElement(using: &random), let known = idOfWaiter[name] {
                    waitID = known
                    if live.contains(name) { expected = name }
                } else {
                    continue
                }
                if cold.registrations[waitID] != nil { endedElsewhere += 1 }
                let waiter = interrupting
                    ? hot.interrupt(waitID) { cold.endIfRegistered($0) }
                    : hot.cancel(waitID) { cold.endIfRegistered($0) }
                #expect(waiter == expected, "seed \(seed): cancel or interrupt at step \(step)")
                if let waiter { note([(waiter, interrupting ? .interrupted : .cancelled)], "cancel or interrupt at step \(step)") }
            case 46..<48:
                if let waitID = unregistered.randomElement(using: &random) { hot.forget(waitID) }
            case 48..<64: // the hot thread: begin, or end and demote
                clock += .milliseconds(Int.random(in: 0...150, using: &random))
                if let polled = hotPolling {
                    let ready = polled.sorted().filter { _ in Int.random(in: 0..<3, using: &random) == 0 }
                    note(hot.endPoll(readySockets: Array(ready), failed: false, now: clock), "hot endPoll at step \(step)")
                    let moved = hot.takeDueDemotions(now: clock)
                    for demotion in moved {
                        #expect(demotion.registration.interest != .interruptionOnly)
                        #expect(demotion.registration.demoteAt.map { $0 <= PollInstant(clock) } ?? false)
                    }
                    demoted += moved.count
                    let adopted = cold.adopt(moved)
                    #expect(adopted.resume.isEmpty)
                    if adopted.wakePoller { #expect(coldPolling != nil) }
                    hotPolling = nil
                } else {
                    hotPolling = plan(&hot, &hotMirror, step)
                }
            case 64..<76: // the cold thread
                clock += .milliseconds(Int.random(in: 0...150, using: &random))
                if let polled = coldPolling {
                    let ready = polled.sorted().filter { _ in Int.random(in: 0..<3, using: &random) == 0 }
                    note(cold.endPoll(readySockets: Array(ready), failed: false, now: clock), "cold endPoll at step \(step)", cold: true)
                    coldPolling = nil
                } else {
                    coldPolling = plan(&cold, &coldMirror, step)
                }
            case 76..<82: // close a socket: quiesce hot, then cold
                var socket = Int.random(in: 0..<socketCount, using: &random)
                if Bool.random(using: &random), let coldSocket = cold.registrations.values.map(\.socket).sorted().randomElement(using: &random) {
                    socket = coldSocket
                }
                for (registry, isCold) in [(0, false), (1, true)] {
                    let closer = newName("closer")
                    let action = registry == 0 ? hot.quiesce(socket, closer: closer) : cold.quiesce(socket, closer: closer)
                    switch action {
                    case .closeNow(let resumed):
                        #expect(resumed.contains { $0.0 == closer })
                        note(resumed, "quiesce at step \(step)", cold: isCold)
                    case .waitForPoll(let resumed, _):
                        #expect((isCold ? coldPolling : hotPolling) != nil)
                        note(resumed, "quiesce at step \(step)", cold: isCold)
                    }
                }
                #expect(!hot.registrations.values.contains { $0.socket == socket })
                #expect(!cold.registrations.values.contains { $0.socket == socket })
            default:
                clock += .milliseconds(Int.random(in: 0...100, using: &random))
            }
            #expect(hot.waitCount + cold.waitCount == live.count, "seed \(seed): waits after step \(step)")
            #expect(Set(hot.registrations.keys).isDisjoint(with: cold.registrations.keys), "seed \(seed): a wait on both sides at step \(step)")
            let problems = hot.invariantViolations().map { "hot: \($0)" } + cold.invariantViolations().map { "cold: \($0)" }
            #expect(problems.isEmpty, "seed \(seed): after step \(step): \(problems)")
        }

        note(hot.shutDown(), "hot shutDown")
        note(cold.shutDown(), "cold shutDown", cold: true)
        // Closers of a poll that was running go on when it returns.
        if hotPolling != nil { note(hot.endPoll(readySockets: [], failed: false, now: clock), "hot endPoll after shutDown") }
        if coldPolling != nil { note(cold.endPoll(readySockets: [], failed: false, now: clock), "cold endPoll after shutDown", cold: true) }
        #expect(hot.waitCount == 0 && cold.waitCount == 0)
        let missing = given.filter { resumeCount[$0] == nil }.sorted()
        #expect(missing.isEmpty, "seed \(seed): never resumed: \(missing)")
        #expect(resumeCount.values.allSatisfy { $0 == 1 })
        // The run exercised the moves and the cold side's ways to end a wait.
        #expect(demoted > 0, "seed \(seed): nothing was demoted")
        #expect(endedCold[.ready, default: 0] > 0, "seed \(seed): no demoted wait became ready on the cold side")
        #expect(endedCold[.closed, default: 0] > 0, "seed \(seed): no demoted wait was closed on the cold side")
        #expect(endedElsewhere > 0, "seed \(seed): no demoted wait was cancelled or interrupted")
    }
}
