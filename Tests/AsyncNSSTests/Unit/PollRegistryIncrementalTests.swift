import Testing
@testable import AsyncNSS

/// What the poll thread does with a plan: a copy of the poll array, changed
/// only as each plan says (entry 0 of the real array, the wakeup event, is left out).
struct PollArrayMirror {
    var entries: [PollRegistryTests.Entry] = []
    /// Indices written by the last plan.
    var lastWritten: [Int] = []

    mutating func apply(_ plan: PollRegistry<Int, String>.Plan) {
        if entries.count > plan.count { entries.removeLast(entries.count - plan.count) }
        while entries.count < plan.count { entries.append(PollRegistryTests.Entry(socket: -1, read: false, write: false)) }
        lastWritten = plan.changes.map(\.index)
        for change in plan.changes {
            entries[change.index] = PollRegistryTests.Entry(socket: change.socket, read: change.read, write: change.write)
        }
    }
}

/// The poll array kept between polls (plans carry only changes, slots are
/// swap-removed), the deadline heap, and when the registry asks for a wakeup.
@Suite("PollRegistry incremental bookkeeping", .timeLimit(.minutes(1)))
struct PollRegistryIncrementalTests: PollRegistryTesting {
    typealias Entry = PollRegistryTests.Entry

    let t0 = ContinuousClock.now

    func kind(_ action: Registry.RegisterAction) -> String {
        switch action {
        case .wakePoller: "wake"
        case .registered: "registered"
        case .resume(let waiter, let outcome): "\(waiter)=\(outcome)"
        }
    }

    // MARK: Plans carry changes only

    @Test("a plan lists only the entries that changed since the previous one")
    func planCarriesChangesOnly() {
        var registry = Registry()
        var mirror = PollArrayMirror()
        for socket in 0..<10 { register(&registry, UInt64(socket), socket: socket, name: "w\(socket)") }
        let first = registry.beginPoll(now: t0)
        mirror.apply(first)
        #expect(first.changes.count == 10)
        #expect(first.count == 10)
        _ = registry.endPoll(readySockets: [], failed: false, now: t0)

        // Nothing changed: an empty plan, the same array.
        let quiet = registry.beginPoll(now: t0)
        mirror.apply(quiet)
        #expect(quiet.changes.isEmpty)
        #expect(quiet.count == 10)
        _ = registry.endPoll(readySockets: [], failed: false, now: t0)

        // A write wait on socket 3 adds write to its entry: one change.
        register(&registry, 100, socket: 3, .write, name: "writer")
        let one = registry.beginPoll(now: t0)
        mirror.apply(one)
        #expect(one.changes.map(\.index) == [3])
        #expect(one.changes.first.map { $0.socket == 3 && $0.read && $0.write } == true)
        #expect(mirror.entries == registry.pollArray.map { Entry(socket: $0.socket, read: $0.read, write: $0.write) })
        #expect(registry.invariantViolations().isEmpty)
    }

    @Test("a socket whose waits all ended is swap-removed: the last entry moves into its place")
    func swapRemove() {
        var registry = Registry()
        var mirror = PollArrayMirror()
        for socket in 0..<5 { register(&registry, UInt64(socket), socket: socket, name: "w\(socket)") }
        mirror.apply(registry.beginPoll(now: t0))
        #expect(mirror.entries.map(\.socket) == [0, 1, 2, 3, 4])
        // Socket 1 becomes ready; its wait ends.
        #expect(summary(registry.endPoll(readySockets: [1], failed: false, now: t0)) == ["w1=ready"])

        let plan = registry.beginPoll(now: t0)
        mirror.apply(plan)
        #expect(plan.count == 4)
        #expect(plan.changes.map(\.index) == [1])
        #expect(mirror.entries.map(\.socket) == [0, 4, 2, 3])
        #expect(registry.invariantViolations().isEmpty)

        // Removing the last entry and one in the middle at once.
        _ = registry.cancel(id(3))
        _ = registry.cancel(id(0))
        _ = registry.endPoll(readySockets: [], failed: false, now: t0)
        let second = registry.beginPoll(now: t0)
        mirror.apply(second)
        #expect(second.count == 2)
        #expect(Set(mirror.entries.map(\.socket)) == [2, 4])
        #expect(mirror.entries == registry.pollArray.map { Entry(socket: $0.socket, read: $0.read, write: $0.write) })
        #expect(registry.invariantViolations().isEmpty)
    }

    @Test("an interrupted or cancelled wait lowers its entry's interest at the next plan")
    func endedWaitLowersInterest() {
        var registry = Registry()
        var mirror = PollArrayMirror()
        register(&registry, 1, socket: 10, .read, name: "reader")
        register(&registry, 2, socket: 10, .write, name: "writer")
        mirror.apply(registry.beginPoll(now: t0))
        #expect(mirror.entries == [Entry(socket: 10, read: true, write: true)])

        #expect(registry.interrupt(id(2)) == "writer")
        // The running poll keeps its array; the change waits for the next plan.
        #expect(registry.pollArray.first.map { $0.write } == true)
        _ = registry.endPoll(readySockets: [], failed: false, now: t0)
        mirror.apply(registry.beginPoll(now: t0))
        #expect(mirror.entries == [Entry(socket: 10, read: true, write: false)])

        #expect(registry.cancel(id(1)) == "reader")
        _ = registry.endPoll(readySockets: [], failed: false, now: t0)
        let plan = registry.beginPoll(now: t0)
        mirror.apply(plan)
        #expect(plan.count == 0)
        #expect(mirror.entries.isEmpty)
        #expect(registry.invariantViolations().isEmpty)
    }

    @Test("a socket quiesced and registered again before the next plan keeps one entry")
    func reregisterAfterQuiesce() {
        var registry = Registry()
        var mirror = PollArrayMirror()
        register(&registry, 1, socket: 10, name: "a")
        mirror.apply(registry.beginPoll(now: t0))
        _ = registry.endPoll(readySockets: [], failed: false, now: t0)
        guard case .closeNow(let resumed) = registry.quiesce(10, closer: "closer") else {
            Issue.record("no poll runs: the socket may close now")
            return
        }
        #expect(summary(resumed) == ["a=closed", "closer=ready"])
        // A new descriptor at the same address (the allocator reuses it).
        register(&registry, 2, socket: 10, .write, name: "b")
        let plan = registry.beginPoll(now: t0)
        mirror.apply(plan)
        #expect(mirror.entries == [Entry(socket: 10, read: false, write: true)])
        #expect(registry.invariantViolations().isEmpty)
    }

    // MARK: Deadlines

    @Test("deadlines of waits that ended no longer shorten the timeout")
    func endedDeadlinesAreDropped() {
        var registry = Registry()
        register(&registry, 1, socket: 10, deadline: t0 + .seconds(1), name: "soon")
        register(&registry, 2, socket: 20, deadline: t0 + .seconds(5), name: "later")
        register(&registry, 3, socket: 30, .interruptionOnly, deadline: t0 + .seconds(3), name: "parked")
        #expect(registry.beginPoll(now: t0).timeout == .seconds(1))
        _ = registry.endPoll(readySockets: [10], failed: false, now: t0)
        #expect(registry.beginPoll(now: t0).timeout == .seconds(3))
        #expect(registry.interrupt(id(3)) == "parked")
        _ = registry.endPoll(readySockets: [], failed: false, now: t0)
        #expect(registry.beginPoll(now: t0).timeout == .seconds(5))
        #expect(registry.cancel(id(2)) == "later")
        _ = registry.endPoll(readySockets: [], failed: false, now: t0)
        #expect(registry.beginPoll(now: t0).timeout == nil)
        #expect(registry.invariantViolations().isEmpty)
    }

    @Test("expired waits end in deadline order and leave their entries")
    func expiryLeavesEntries() {
        var registry = Registry()
        var mirror = PollArrayMirror()
        for raw in 1...20 {
            register(&registry, UInt64(raw), socket: raw, deadline: t0 + .milliseconds(raw * 100), name: "w\(raw)")
        }
        mirror.apply(registry.beginPoll(now: t0))
        let expired = registry.endPoll(readySockets: [], failed: false, now: t0 + .milliseconds(1000))
        #expect(expired.map(\.0) == (1...10).map { "w\($0)" })
        #expect(expired.allSatisfy { $0.1 == .timedOut })
        let plan = registry.beginPoll(now: t0 + .milliseconds(1000))
        mirror.apply(plan)
        #expect(plan.count == 10)
        #expect(Set(mirror.entries.map(\.socket)) == Set(11...20))
        #expect(plan.timeout == .milliseconds(100))
        #expect(registry.invariantViolations().isEmpty)
    }

    @Test("the heap of deadlines is compacted when most of its entries belong to ended waits")
    func deadlineHeapCompaction() {
        var registry = Registry()
        for raw in 1...1000 {
            register(&registry, UInt64(raw), socket: raw % 7, deadline: t0 + .seconds(60 + raw), name: "w\(raw)")
            _ = registry.cancel(id(UInt64(raw)))
        }
        register(&registry, 5000, socket: 1, deadline: t0 + .seconds(90), name: "kept")
        _ = registry.beginPoll(now: t0)
        _ = registry.endPoll(readySockets: [], failed: false, now: t0)
        #expect(registry.invariantViolations().isEmpty)
        #expect(registry.beginPoll(now: t0).timeout == .seconds(90))
    }

    // MARK: Wakeups

    @Test("between polls a registration needs no wakeup: the poll thread plans it before it polls")
    func noWakeBetweenPolls() {
        var registry = Registry()
        #expect(kind(register(&registry, 1, socket: 10, name: "a")) == "registered")
        _ = registry.beginPoll(now: t0)
        _ = registry.endPoll(readySockets: [], failed: false, now: t0)
        #expect(kind(register(&registry, 2, socket: 20, deadline: t0 + .seconds(1), name: "b")) == "registered")
    }

    @Test("during a poll the first uncovered registration wakes the poller, the next ones do not")
    func oneWakePerPoll() {
        var registry = Registry()
        register(&registry, 1, socket: 10, name: "a")
        _ = registry.beginPoll(now: t0)
        #expect(kind(register(&registry, 2, socket: 20, name: "b")) == "wake")
        #expect(kind(register(&registry, 3, socket: 30, name: "c")) == "registered")
        #expect(kind(register(&registry, 4, socket: 40, .write, deadline: t0, name: "d")) == "registered")
        _ = registry.endPoll(readySockets: [], failed: false, now: t0 - .seconds(1))
        // The next poll may need its own wakeup.
        _ = registry.beginPoll(now: t0 - .seconds(1))
        #expect(kind(register(&registry, 5, socket: 50, name: "e")) == "wake")
    }

    @Test("a read or write wait on a socket the running poll already watches still wakes it once")
    func registrationOnPolledSocketWakes() {
        // The SSL layer picked what to wait for when PR_Poll started; the
        // task may have moved the socket's state on since, so the poll restarts.
        var registry = Registry()
        register(&registry, 1, socket: 10, .read, name: "a")
        _ = registry.beginPoll(now: t0)
        #expect(registry.cancel(id(1)) == "a")
        #expect(kind(register(&registry, 2, socket: 10, .read, name: "b")) == "wake")
        #expect(kind(register(&registry, 3, socket: 10, .read, name: "c")) == "registered")
        // An interruption-only wait without a deadline needs no poll at all.
        #expect(kind(register(&registry, 4, socket: 10, .interruptionOnly, name: "parked")) == "registered")
        // Readiness of the socket resumes the read waits registered during the poll.
        #expect(summary(registry.endPoll(readySockets: [10], failed: false, now: t0)) == ["b=ready", "c=ready"])
    }

    @Test("an interruption-only wait wakes a running poll only for an earlier deadline")
    func interruptionOnlyWakesForEarlierDeadline() {
        var registry = Registry()
        register(&registry, 1, socket: 10, .read, deadline: t0 + .seconds(10), name: "timer")
        _ = registry.beginPoll(now: t0)
        #expect(kind(register(&registry, 2, socket: 20, .interruptionOnly, deadline: t0 + .seconds(20), name: "later")) == "registered")
        #expect(kind(register(&registry, 3, socket: 20, .interruptionOnly, name: "none")) == "registered")
        #expect(kind(register(&registry, 4, socket: 20, .interruptionOnly, deadline: t0 + .seconds(5), name: "sooner")) == "wake")
    }

    @Test("an earlier deadline than the running poll's timeout wakes it")
    func earlierDeadlineWakes() {
        var registry = Registry()
        register(&registry, 1, socket: 10, deadline: t0 + .seconds(10), name: "a")
        _ = registry.beginPoll(now: t0)
        #expect(kind(register(&registry, 2, socket: 10, deadline: t0 + .seconds(1), name: "b")) == "wake")
        _ = registry.endPoll(readySockets: [], failed: false, now: t0)
        // A poll with no timeout is woken by any deadline.
        var other = Registry()
        register(&other, 1, socket: 10, name: "a")
        _ = other.beginPoll(now: t0)
        _ = other.cancel(id(1))
        #expect(kind(register(&other, 2, socket: 10, .interruptionOnly, deadline: t0 + .seconds(60), name: "parked")) == "wake")
    }

    @Test("a quiesce during a poll asks for a wakeup unless one is already on its way")
    func quiesceWakeCoalesced() {
        var registry = Registry()
        register(&registry, 1, socket: 10, name: "a")
        register(&registry, 2, socket: 20, name: "b")
        _ = registry.beginPoll(now: t0)
        guard case .waitForPoll(_, let firstWake) = registry.quiesce(10, closer: "c1"),
              case .waitForPoll(_, let secondWake) = registry.quiesce(20, closer: "c2") else {
            Issue.record("both sockets are in the running poll")
            return
        }
        #expect(firstWake)
        #expect(!secondWake)
        #expect(summary(registry.endPoll(readySockets: [], failed: false, now: t0)) == ["c1=ready", "c2=ready"])
    }

    // MARK: Random sequences

    /// Many sockets, heavy churn: after every step the poll thread's copy
    /// (changed only by plans) equals the registry's array between a plan
    /// and the end of its poll, the indices agree, and deadlines end the
    /// waits a simple model says they end.
    @Test("swap-remove keeps the poll thread's copy exact over random sequences", arguments: 0..<16)
    func randomIncrementalSequences(seed: UInt64) {
        var random = UnitSeededGenerator(seed: 0x5EED_0000 + seed)
        var registry = Registry()
        var mirror = PollArrayMirror()
        var clock = t0
        var nextID: UInt64 = 0
        // The model: live waits by ID.
        var model: [PollWaitID: (socket: Int, interest: PollInterest, deadline: ContinuousClock.Instant?)] = [:]
        var pollRunning = false
        var wakeAskedThisPoll = false
        var planned = 0
        var removedEntries = 0
        let socketCount = [8, 64, 300][Int(seed % 3)]

        func check(_ step: Int) {
            let problems = registry.invariantViolations()
            #expect(problems.isEmpty, "seed \(seed) step \(step): \(problems)")
            #expect(registry.waitCount == model.count, "seed \(seed) step \(step): waitCount")
        }

        for step in 0..<3000 {
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<40:
                nextID += 1
                let socket = Int.random(in: 0..<socketCount, using: &random)
                let interest: PollInterest = [.read, .write, .read, .interruptionOnly].randomElement(using: &random) ?? .read
                let deadline: ContinuousClock.Instant? = Int.random(in: 0..<3, using: &random) == 0
                    ? clock + .milliseconds(Int.random(in: 1...500, using: &random)) : nil
                let action = registry.register(PollWaitID(raw: nextID), socket: socket, interest: interest, deadline: deadline, waiter: "w\(nextID)")
                switch action {
                case .wakePoller:
                    #expect(pollRunning && !wakeAskedThisPoll, "seed \(seed) step \(step): a second wakeup in one poll")
                    wakeAskedThisPoll = true
                case .registered: break
                case .resume: Issue.record("seed \(seed) step \(step): a fresh registration was refused")
                }
                model[PollWaitID(raw: nextID)] = (socket, interest, deadline)
            case 40..<55:
                if let victim = model.keys.sorted().randomElement(using: &random) {
                    let interrupting = Bool.random(using: &random)
                    let waiter = interrupting ? registry.interrupt(victim) : registry.cancel(victim)
                    #expect(waiter == "w\(victim.raw)")
                    model.removeValue(forKey: victim)
                }
            case 55..<62:
                let socket = Int.random(in: 0..<socketCount, using: &random)
                let expected = model.filter { $0.value.socket == socket }.map { "w\($0.key.raw)=closed" }
                switch registry.quiesce(socket, closer: "closer") {
                case .closeNow(let resumed):
                    #expect(summary(resumed) == (expected + ["closer=ready"]).sorted())
                case .waitForPoll(let resumed, let wake):
                    #expect(pollRunning)
                    #expect(summary(resumed) == expected.sorted())
                    if wake {
                        #expect(!wakeAskedThisPoll)
                        wakeAskedThisPoll = true
                    }
                }
                model = model.filter { $0.value.socket != socket }
            default:
                if pollRunning {
                    clock += .milliseconds(Int.random(in: 0...120, using: &random))
                    let polled = Set(mirror.entries.map(\.socket))
                    let ready = polled.sorted().filter { _ in Int.random(in: 0..<4, using: &random) == 0 }
                    let resumed = registry.endPoll(readySockets: Array(ready), failed: false, now: clock)
                    var expected: [String] = []
                    for (id, wait) in model {
                        if wait.interest != .interruptionOnly, ready.contains(wait.socket) {
                            expected.append("w\(id.raw)=ready")
                        } else if let deadline = wait.deadline, deadline <= clock {
                            expected.append("w\(id.raw)=timedOut")
                        }
                    }
                    #expect(summary(resumed).filter { !$0.hasPrefix("closer") } == expected.sorted(), "seed \(seed) step \(step)")
                    for entry in resumed where !entry.0.hasPrefix("closer") {
                        model.removeValue(forKey: PollWaitID(raw: UInt64(entry.0.dropFirst()) ?? 0))
                    }
                    pollRunning = false
                    wakeAskedThisPoll = false
                } else {
                    let before = registry.pollArray.count
                    let plan = registry.beginPoll(now: clock)
                    mirror.apply(plan)
                    planned += plan.changes.count
                    removedEntries += max(0, before - plan.count)
                    #expect(mirror.entries == registry.pollArray.map { Entry(socket: $0.socket, read: $0.read, write: $0.write) },
                            "seed \(seed) step \(step): the copy differs")
                    var wanted: [Int: Entry] = [:]
                    for wait in model.values where wait.interest != .interruptionOnly {
                        var entry = wanted[wait.socket] ?? Entry(socket: wait.socket, read: false, write: false)
                        if wait.interest == .read { entry.read = true } else { entry.write = true }
                        wanted[wait.socket] = entry
                    }
                    #expect(mirror.entries.sorted { $0.socket < $1.socket } == wanted.values.sorted { $0.socket < $1.socket },
                            "seed \(seed) step \(step): the array does not match the waits")
                    let earliest = model.values.compactMap(\.deadline).min()
                    #expect(plan.timeout == earliest.map { max(.zero, $0 - clock) }, "seed \(seed) step \(step): timeout")
                    pollRunning = true
                }
            }
            check(step)
        }
        #expect(removedEntries > 0, "seed \(seed): no entry was ever removed")
        let remaining = registry.shutDown()
        #expect(remaining.filter { !$0.0.hasPrefix("closer") }.count == model.count)
    }
}
