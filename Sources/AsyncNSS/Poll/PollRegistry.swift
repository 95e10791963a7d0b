/// What a waiting task wants from a socket.
enum PollInterest: Sendable, Hashable {
    case read
    case write
    /// No readiness at all: the wait ends only by its deadline, an
    /// interruption, cancellation or close.
    case interruptionOnly
}

/// How a wait on the poll thread ended.
enum PollOutcome: Sendable, Hashable {
    /// The socket may be ready: retry the operation.
    case ready
    /// The deadline given at registration passed.
    case timedOut
    /// The waiting task was cancelled.
    case cancelled
    /// The socket is being closed.
    case closed
    /// The poll thread is shutting down.
    case shutDown
    /// Another task of the same connection interrupted the wait: look again.
    case interrupted
}

/// Identifies one wait. Waits are one-shot: each ID is registered at most once.
struct PollWaitID: Hashable, Sendable, Comparable {
    let raw: UInt64
    static func < (lhs: Self, rhs: Self) -> Bool { lhs.raw < rhs.raw }
}

/// The poll thread's bookkeeping as a state machine with no I/O.
///
/// Tasks register one-shot interests; the poll thread asks for a ``Plan``,
/// polls, and reports what became ready. Closing a socket first *quiesces* it:
/// its waits end with ``PollOutcome/closed`` and, if `PR_Poll` is looking at it
/// right now, the closer waits until that poll returns. Every method returns the
/// waiters to resume; the caller resumes them after releasing its lock.
///
/// The poll array is kept between polls. Each polled socket owns one *slot*,
/// whose index is its position in the poll thread's `PRPollDesc` array; a
/// ``Plan`` carries only the slots that changed since the previous poll, so
/// planning costs O(changes), not O(sockets). Slots are removed only in
/// ``beginPoll(now:)`` (swap-remove: the last slot moves into the hole), so
/// indices stay stable while a poll runs. Deadlines live in a min-heap with
/// lazy deletion. Only `PR_Poll` itself stays O(n).
///
/// The registry also decides when the poll thread must be woken: only while a
/// poll runs (between ``beginPoll(now:)`` and ``endPoll(readySockets:failed:now:)``),
/// only once per poll, and for an interruption-only wait only if its deadline
/// comes before the running poll's timeout.
///
/// **Demotion** (the hot and cold layout, see ``PollGroup``): a read or write
/// wait may carry a demotion time, a second deadline whose expiry does not end
/// the wait but hands it over, unchanged, to another registry.
/// ``takeDueDemotions(now:batchCost:)`` returns those handovers and
/// ``adopt(_:)`` takes them in. Demotions are batched: none is due until the earliest pending
/// demotion time is `demotionBatchWindow` old, and then every wait whose
/// demotion time has passed goes, so a stream of waits produces at most one
/// batch per window. A busy poll thread moves waits sooner: once the polls
/// since the last batch have scanned as many array entries as a batch costs
/// the receiving thread, every wait within `earlyDemotionLead` of its
/// demotion time goes (see ``takeDueDemotions(now:batchCost:)``).
/// ``cancel(_:elsewhere:)`` and ``interrupt(_:elsewhere:)`` look in the other
/// registry (``endIfRegistered(_:)``) before they remember an early ending, so
/// a wait is found wherever it is.
///
/// `Socket` is the poll key (a `PRFileDesc` in production, an `Int` in tests);
/// `Waiter` is what gets resumed (a continuation in production).
struct PollRegistry<Socket: Hashable, Waiter> {
    struct Registration {
        // The one-byte fields last: between the optional instants they would
        // pad every entry by 8 bytes (an idle connection keeps one entry).
        var socket: Socket
        var waiter: Waiter
        var deadline: PollInstant?
        /// When the wait moves to another registry if it is still pending
        /// (read and write waits only); nil: never.
        var demoteAt: PollInstant?
        var interest: PollInterest
    }

    /// A wait handed over by ``takeDueDemotions(now:batchCost:)``: the same ID,
    /// deadline and waiter, for ``adopt(_:)`` on another registry.
    struct Demotion {
        var id: PollWaitID
        var registration: Registration
    }

    struct AdoptAction {
        /// Waits the registry refused (it is shut down): resume them.
        var resume: [(Waiter, PollOutcome)]
        /// Wake this registry's poll thread.
        var wakePoller: Bool
    }

    /// Read and write interest of one poll-array entry.
    struct Flags: Hashable {
        var read = false
        var write = false

        static var none: Flags { Flags() }

        var isEmpty: Bool { !read && !write }
    }

    /// One entry of the poll array, kept between polls.
    struct Slot {
        var socket: Socket
        /// The read and write waits on the socket (never interruption-only ones).
        var waits: SlotWaits
        /// What the poll thread's array holds at this index since the last plan.
        var applied: Flags
        /// Listed in `dirty`: the next plan must (re)write this index.
        var isDirty: Bool

        var wanted: Flags {
            var flags = Flags.none
            for wait in waits {
                switch wait.interest {
                case .read: flags.read = true
                case .write: flags.write = true
                case .interruptionOnly: break
                }
            }
            return flags
        }
    }

    /// One entry of the poll array to (re)write before polling.
    struct Change {
        var index: Int
        var socket: Socket
        var read: Bool
        var write: Bool
    }

    /// What the poll thread should change in its poll array before `PR_Poll`.
    struct Plan {
        /// Entries to write, by index (0 is the first socket, after any entry of the caller's own).
        var changes: [Change]
        /// The number of socket entries; entries at `count` and beyond are dropped.
        var count: Int
        /// How long to wait at most; `nil` waits until woken.
        var timeout: Duration?
    }

    enum RegisterAction {
        /// The registration is recorded; wake the poll thread so it polls the socket.
        case wakePoller
        /// The registration is recorded; a wakeup is already on its way, the
        /// poll thread will plan it before it polls again, or it is an
        /// interruption-only wait that the running poll's timeout covers.
        case registered
        /// The registration was refused: resume at once with this outcome.
        case resume(Waiter, PollOutcome)
    }

    enum QuiesceAction {
        /// Nothing polls the socket any more: it may be closed now. Resume the
        /// listed waits first.
        case closeNow(resume: [(Waiter, PollOutcome)])
        /// The poll thread is inside `PR_Poll` with this socket: the quiesce
        /// waiter is resumed by ``endPoll(readySockets:failed:now:)``. Wake the
        /// poll thread if `wakePoller` (otherwise a wakeup is already on its way).
        case waitForPoll(resume: [(Waiter, PollOutcome)], wakePoller: Bool)
    }

    private(set) var registrations: [PollWaitID: Registration] = [:]
    /// Waits cancelled or interrupted before they registered, and how they end.
    private var endedEarly: [PollWaitID: PollOutcome] = [:]
    /// Waits that another task may interrupt before they register (see
    /// ``announce(_:)``), until ``forget(_:)``. An interruption of any other
    /// wait that is not registered is dropped: that wait has ended already,
    /// and remembering it would keep an entry in `endedEarly` forever.
    private var announced: Set<PollWaitID> = []

    /// The poll array: one slot per socket with read or write waits (or whose
    /// waits ended since the last plan).
    private var slots: [Slot] = []
    private var slotIndex: [Socket: Int] = [:]
    /// Indices of the slots with `isDirty` set, each once.
    private var dirty: [Int] = []
    /// Storage that `beginPoll` takes turns with `dirty` and keeps for its
    /// list of slots to remove, so that once grown, planning a poll
    /// allocates only the changes it returns.
    private var spareDirty: [Int] = []
    private var spareRemovals: [Int] = []
    /// Interruption-only waits, which are not polled, by socket.
    private var parked: [Socket: [PollWaitID]] = [:]
    /// Deadlines of waits, earliest first; entries of waits that ended are
    /// dropped when they reach the top or when the heap is compacted.
    private var deadlines = DeadlineHeap()
    /// Registrations that have a deadline.
    private var liveDeadlines = 0
    /// Demotion times of waits, earliest first, with lazy deletion like `deadlines`.
    private var demotions = DeadlineHeap()
    /// Registrations that have a demotion time.
    private var liveDemotions = 0
    /// How old the earliest demotion time must be before a batch is due.
    let demotionBatchWindow: Duration
    /// How long before its demotion time a wait may move in a batch that
    /// the polls have paid for (see ``takeDueDemotions(now:batchCost:)``).
    let earlyDemotionLead: Duration
    /// Poll-array entries scanned by the polls since the last batch, counted
    /// while some wait has a demotion time.
    private(set) var scannedSinceBatch = 0

    /// Whether a poll is running: between `beginPoll` and `endPoll`.
    private var polling = false
    /// The number of slots in the running poll's array (slots `0..<polledCount`).
    private var polledCount = 0
    /// When the running poll's timeout ends, or nil if it waits until woken.
    private var polledDeadline: PollInstant? = nil
    /// A wakeup was asked for during the running poll.
    private var wakeRequested = false

    /// Closers waiting for the running poll to return.
    private var quiesceWaiters: [Waiter] = []
    private(set) var isShutDown = false

    init(demotionBatchWindow: Duration = .zero, earlyDemotionLead: Duration = .zero) {
        self.demotionBatchWindow = demotionBatchWindow
        self.earlyDemotionLead = earlyDemotionLead
    }

    var waitCount: Int { registrations.count }

    /// The poll array as the last plan left it: what the poll thread passes to
    /// `PR_Poll` (after its own entries). O(n); for tests and diagnostics.
    var pollArray: [(socket: Socket, read: Bool, write: Bool)] {
        slots.prefix(polledCount).map { ($0.socket, $0.applied.read, $0.applied.write) }
    }

    // MARK: Tasks

    mutating func register(
        _ id: PollWaitID,
        socket: Socket,
        interest: PollInterest,
        deadline: ContinuousClock.Instant?,
        waiter: Waiter,
        demoteAt: ContinuousClock.Instant? = nil
    ) -> RegisterAction {
        register(id, socket: socket, interest: interest, deadline: deadline.map(PollInstant.init), waiter: waiter, demoteAt: demoteAt.map(PollInstant.init))
    }

    private mutating func register(
        _ id: PollWaitID,
        socket: Socket,
        interest: PollInterest,
        deadline: PollInstant?,
        waiter: Waiter,
        demoteAt: PollInstant?
    ) -> RegisterAction {
        if isShutDown {
            return .resume(waiter, .shutDown)
        }
        if let outcome = endedEarly.removeValue(forKey: id) {
            return .resume(waiter, outcome)
        }
        // Interruption-only waits are not polled: moving them would gain nothing.
        let demoteAt = interest == .interruptionOnly ? nil : demoteAt
        registrations[id] = Registration(socket: socket, waiter: waiter, deadline: deadline, demoteAt: demoteAt, interest: interest)
        if let demoteAt {
            // A read or write wait already wakes a running poll (below), so
            // the poll's timeout will include this demotion when it is planned.
            demotions.push(demoteAt, id)
            liveDemotions += 1
        }
        var needsWake = false
        switch interest {
        case .interruptionOnly:
            parked[socket, default: []].append(id)
        case .read, .write:
            // A running poll is woken even when its array already has this
            // socket with this interest: the SSL layer chose what to wait for
            // (readable or writable, or "ready now") from the socket's state
            // when `PR_Poll` started, and the task may have moved that state on
            // since (gotcha: the SSL layer rewrites interest while handshaking).
            needsWake = true
            if let index = slotIndex[socket] {
                slots[index].waits.append((id, interest))
                if slots[index].wanted != slots[index].applied { markDirty(index) }
            } else {
                slotIndex[socket] = slots.count
                var waits = SlotWaits()
                waits.append((id, interest))
                slots.append(Slot(socket: socket, waits: waits, applied: .none, isDirty: false))
                markDirty(slots.count - 1)
            }
        }
        if let deadline {
            deadlines.push(deadline, id)
            liveDeadlines += 1
            if let polledDeadline {
                if deadline < polledDeadline { needsWake = true }
            } else {
                needsWake = true
            }
        }
        return requestWake(needsWake) ? .wakePoller : .registered
    }

    /// Cancels a wait. Returns its waiter if it was registered here or
    /// `elsewhere` (the registry its wait may have been demoted to) ends it;
    /// otherwise remembers the cancellation for a registration still to come.
    mutating func cancel(_ id: PollWaitID, elsewhere: (PollWaitID) -> Waiter? = { _ in nil }) -> Waiter? {
        end(id, with: .cancelled, elsewhere: elsewhere)
    }

    /// Ends a wait with ``PollOutcome/interrupted``. Returns its waiter if it
    /// was registered here or `elsewhere` ends it; otherwise a registration
    /// still to come ends at once.
    mutating func interrupt(_ id: PollWaitID, elsewhere: (PollWaitID) -> Waiter? = { _ in nil }) -> Waiter? {
        end(id, with: .interrupted, elsewhere: elsewhere)
    }

    /// Ends a wait if it is registered here, and returns its waiter; never
    /// remembers anything for later. For a registry that only adopts demoted
    /// waits: the early endings live in the registry the waits register on.
    mutating func endIfRegistered(_ id: PollWaitID) -> Waiter? {
        remove(id)?.waiter
    }

    private mutating func end(_ id: PollWaitID, with outcome: PollOutcome, elsewhere: (PollWaitID) -> Waiter?) -> Waiter? {
        if let registration = remove(id) {
            return registration.waiter
        }
        if let waiter = elsewhere(id) {
            return waiter
        }
        // A wait's own task cancels it, and forgets it once the wait returns;
        // an interruption comes from another task, perhaps after that.
        guard outcome == .cancelled || announced.contains(id) else { return nil }
        // A cancellation outranks an interruption that came first.
        if endedEarly[id] != .cancelled { endedEarly[id] = outcome }
        return nil
    }

    /// Whether `socket` has a slot or a parked wait here: if not, a
    /// ``quiesce(_:closer:)`` would close at once with nothing to resume.
    func tracks(_ socket: Socket) -> Bool {
        slotIndex[socket] != nil || parked[socket] != nil || (isShutDown && polling)
    }

    /// Says that another task may ``interrupt(_:)`` the wait `id` before it
    /// registers, so that such an interruption is remembered for it. Every
    /// announced ID is ``forget(_:)``-ed once its wait returned (or will
    /// never be made).
    mutating func announce(_ id: PollWaitID) {
        announced.insert(id)
    }

    /// The wait `id` has returned, or will never register: drops what was
    /// remembered for it, an early ending or an announcement.
    mutating func forget(_ id: PollWaitID) {
        endedEarly.removeValue(forKey: id)
        announced.remove(id)
    }

    /// How many early endings and announcements are remembered; for tests.
    var rememberedCount: Int { endedEarly.count + announced.count }

    /// Ends every wait on `socket` so that it can be closed.
    mutating func quiesce(_ socket: Socket, closer: Waiter) -> QuiesceAction {
        var resume: [(Waiter, PollOutcome)] = []
        var inRunningPoll = false
        if let index = slotIndex[socket] {
            for wait in slots[index].waits {
                if let registration = takeRegistration(wait.id) {
                    resume.append((registration.waiter, .closed))
                }
            }
            slots[index].waits.removeAll()
            markDirty(index)
            inRunningPoll = polling && index < polledCount
        }
        // After a shutdown the slots are gone, but the poll that was running
        // then may still hold any socket in its array.
        if isShutDown && polling { inRunningPoll = true }
        if let ids = parked.removeValue(forKey: socket) {
            for id in ids {
                if let registration = takeRegistration(id) {
                    resume.append((registration.waiter, .closed))
                }
            }
        }
        if inRunningPoll {
            quiesceWaiters.append(closer)
            return .waitForPoll(resume: resume, wakePoller: requestWake(true))
        }
        resume.append((closer, .ready))
        return .closeNow(resume: resume)
    }

    // MARK: Poll thread

    /// Starts a poll: returns the changes to the poll array and the timeout.
    mutating func beginPoll(now: ContinuousClock.Instant) -> Plan {
        let now = PollInstant(now)
        // `candidates` takes the dirty indices, and `dirty` the spare storage.
        var candidates: [Int] = []
        swap(&candidates, &spareDirty)
        swap(&candidates, &dirty)
        var removals: [Int] = []
        swap(&removals, &spareRemovals)
        defer {
            candidates.removeAll(keepingCapacity: true)
            spareDirty = candidates
            removals.removeAll(keepingCapacity: true)
            spareRemovals = removals
        }
        // Slots left without waits leave the array, highest index first, so
        // that the slot moved into a hole is never one still to remove.
        for index in candidates where slots[index].waits.isEmpty {
            removals.append(index)
        }
        removals.sort(by: >)
        for index in removals {
            let last = slots.count - 1
            slotIndex.removeValue(forKey: slots[index].socket)
            if index != last {
                slots.swapAt(index, last)
                slotIndex[slots[index].socket] = index
                slots[index].isDirty = true
                candidates.append(index)
            }
            slots.removeLast()
        }
        var changes: [Change] = []
        changes.reserveCapacity(candidates.count)
        for index in candidates where index < slots.count && slots[index].isDirty {
            let flags = slots[index].wanted
            slots[index].isDirty = false
            slots[index].applied = flags
            changes.append(Change(index: index, socket: slots[index].socket, read: flags.read, write: flags.write))
        }
        polledCount = slots.count
        polling = true
        wakeRequested = false
        dropEndedDeadlines()
        dropEndedDemotions()
        polledDeadline = deadlines.first?.deadline
        if let due = demotionDue, polledDeadline.map({ due < $0 }) ?? true {
            polledDeadline = due
        }
        return Plan(changes: changes, count: slots.count, timeout: polledDeadline.map { max(.zero, $0 - now) })
    }

    /// Ends a poll. `readySockets` are those with non-zero `out_flags`; when
    /// `failed` is true (`PR_Poll` returned -1) every polled wait is resumed so
    /// its task retries and sees the real error.
    mutating func endPoll(readySockets: [Socket], failed: Bool, now: ContinuousClock.Instant) -> [(Waiter, PollOutcome)] {
        let now = PollInstant(now)
        if liveDemotions > 0 { scannedSinceBatch += polledCount }
        var resume: [(Waiter, PollOutcome)] = []
        // One allocation per poll instead of one per doubling.
        resume.reserveCapacity(failed ? polledCount : readySockets.count)
        if failed {
            for index in 0..<min(polledCount, slots.count) {
                resumeSlot(index, into: &resume)
            }
        } else {
            for socket in readySockets {
                if let index = slotIndex[socket], index < polledCount {
                    resumeSlot(index, into: &resume)
                }
            }
        }
        while let top = deadlines.first, top.deadline <= now {
            deadlines.removeFirst()
            if registrations[top.id]?.deadline == top.deadline, let registration = remove(top.id) {
                resume.append((registration.waiter, .timedOut))
            }
        }
        if deadlines.count > 2 * liveDeadlines + 64 {
            deadlines.rebuild(registrations.lazy.compactMap { id, registration in
                registration.deadline.map { ($0, id) }
            })
        }
        if demotions.count > 2 * liveDemotions + 64 {
            demotions.rebuild(registrations.lazy.compactMap { id, registration in
                registration.demoteAt.map { ($0, id) }
            })
        }
        polling = false
        wakeRequested = false
        polledDeadline = nil
        resume.append(contentsOf: quiesceWaiters.map { ($0, .ready) })
        quiesceWaiters.removeAll()
        return resume
    }

    // MARK: Demotion

    /// When the next batch of demotions is due: the earliest live demotion
    /// time plus the batch window. Call after `dropEndedDemotions`.
    private var demotionDue: PollInstant? {
        demotions.first.map { $0.deadline + demotionBatchWindow }
    }

    /// Removes and returns the waits to demote, if a batch is due at `now`.
    /// Their slots empty as if the waits had ended (the sockets leave this
    /// poll array at the next plan); their waiters are *not* resumed: hand
    /// them to ``adopt(_:)``.
    ///
    /// A batch is due in two cases:
    /// - by time: the earliest demotion time is `demotionBatchWindow` old.
    ///   Every wait whose demotion time has passed goes.
    /// - by cost: the polls since the last batch scanned at least `batchCost`
    ///   entries, and some wait is within `earlyDemotionLead` of its demotion
    ///   time. Every such wait goes.
    ///
    /// `batchCost` is what receiving a batch costs the other registry's
    /// thread, in scanned entries. That thread is woken and polls its whole
    /// array again. Each wait that stays costs this thread one entry per
    /// poll. So on a busy thread a stale wait is not kept for a fixed time
    /// while every poll scans it. The time spent scanning stale waits stays
    /// within what the batches that move them cost. A wait further than
    /// the lead from its demotion time stays (``PollLoop`` sets the lead so
    /// that waits younger than its minimum age stay, such as a handshake
    /// waiting for the peer's next flight).
    mutating func takeDueDemotions(now: ContinuousClock.Instant, batchCost: Int = .max) -> [Demotion] {
        let now = PollInstant(now)
        dropEndedDemotions()
        guard let earliest = demotions.first?.deadline, let due = demotionDue else {
            scannedSinceBatch = 0
            return []
        }
        let paidFor = scannedSinceBatch >= batchCost
        let cutoff = paidFor ? now + earlyDemotionLead : now
        guard due <= now || (paidFor && earliest <= cutoff) else { return [] }
        scannedSinceBatch = 0
        var moved: [Demotion] = []
        while let top = demotions.first, top.deadline <= cutoff {
            demotions.removeFirst()
            if registrations[top.id]?.demoteAt == top.deadline, let registration = remove(top.id) {
                moved.append(Demotion(id: top.id, registration: registration))
            }
        }
        return moved
    }

    /// Registers waits demoted from another registry, with their IDs,
    /// deadlines and waiters, and no further demotion. Refused (resumed with
    /// ``PollOutcome/shutDown``) after ``shutDown()``.
    mutating func adopt(_ moved: [Demotion]) -> AdoptAction {
        var action = AdoptAction(resume: [], wakePoller: false)
        for demotion in moved {
            var registration = demotion.registration
            registration.demoteAt = nil
            switch register(demotion.id, socket: registration.socket, interest: registration.interest,
                            deadline: registration.deadline, waiter: registration.waiter, demoteAt: nil) {
            case .wakePoller: action.wakePoller = true
            case .registered: break
            case .resume(let waiter, let outcome): action.resume.append((waiter, outcome))
            }
        }
        return action
    }

    /// Ends every wait; later registrations are refused.
    ///
    /// A poll that is running keeps its array until it returns, so the
    /// closers waiting for it (and any that quiesce meanwhile) are not
    /// resumed here but by its ``endPoll(readySockets:failed:now:)``: a
    /// closer that went on now could `PR_Close` a descriptor that `PR_Poll`
    /// still uses. The caller wakes the poll thread.
    mutating func shutDown() -> [(Waiter, PollOutcome)] {
        isShutDown = true
        let resume = registrations.values.map { ($0.waiter, PollOutcome.shutDown) }
        registrations.removeAll()
        slots.removeAll()
        slotIndex.removeAll()
        dirty.removeAll()
        parked.removeAll()
        endedEarly.removeAll()
        announced.removeAll()
        deadlines = DeadlineHeap()
        liveDeadlines = 0
        demotions = DeadlineHeap()
        liveDemotions = 0
        polledDeadline = nil
        polledCount = 0
        guard !polling else { return resume }
        defer { quiesceWaiters.removeAll() }
        return resume + quiesceWaiters.map { ($0, .ready) }
    }

    // MARK: Bookkeeping

    /// Asks for a wakeup if one is needed: only while a poll runs, and once per poll.
    private mutating func requestWake(_ needed: Bool) -> Bool {
        guard needed, polling, !wakeRequested else { return false }
        wakeRequested = true
        return true
    }

    private mutating func markDirty(_ index: Int) {
        if !slots[index].isDirty {
            slots[index].isDirty = true
            dirty.append(index)
        }
    }

    /// Removes a registration and its wait from its slot or parking place.
    private mutating func remove(_ id: PollWaitID) -> Registration? {
        guard let registration = takeRegistration(id) else { return nil }
        switch registration.interest {
        case .interruptionOnly:
            if var ids = parked[registration.socket], let position = ids.firstIndex(of: id) {
                ids.remove(at: position)
                parked[registration.socket] = ids.isEmpty ? nil : ids
            }
        case .read, .write:
            if let index = slotIndex[registration.socket], slots[index].waits.remove(id: id) {
                if slots[index].wanted != slots[index].applied { markDirty(index) }
            }
        }
        return registration
    }

    /// Removes a registration from `registrations` only; the caller clears its slot or parking place.
    private mutating func takeRegistration(_ id: PollWaitID) -> Registration? {
        guard let registration = registrations.removeValue(forKey: id) else { return nil }
        if registration.deadline != nil { liveDeadlines -= 1 }
        if registration.demoteAt != nil { liveDemotions -= 1 }
        return registration
    }

    private mutating func resumeSlot(_ index: Int, into resume: inout [(Waiter, PollOutcome)]) {
        guard !slots[index].waits.isEmpty else { return }
        for wait in slots[index].waits {
            if let registration = takeRegistration(wait.id) {
                resume.append((registration.waiter, .ready))
            }
        }
        slots[index].waits.removeAll()
        markDirty(index)
    }

    /// Pops the deadlines of waits that already ended off the top of the heap.
    private mutating func dropEndedDeadlines() {
        while let top = deadlines.first, registrations[top.id]?.deadline != top.deadline {
            deadlines.removeFirst()
        }
    }

    /// Pops the demotion times of waits that ended or moved off the top of the heap.
    private mutating func dropEndedDemotions() {
        while let top = demotions.first, registrations[top.id]?.demoteAt != top.deadline {
            demotions.removeFirst()
        }
    }

    /// Internal consistency, for tests: an empty list when every index,
    /// slot and deadline agrees with `registrations`. O(n).
    func invariantViolations() -> [String] {
        var problems: [String] = []
        if slotIndex.count != slots.count { problems.append("slotIndex has \(slotIndex.count) sockets for \(slots.count) slots") }
        var seen = Set<PollWaitID>()
        for (index, slot) in slots.enumerated() {
            if slotIndex[slot.socket] != index { problems.append("slot \(index) is indexed at \(String(describing: slotIndex[slot.socket]))") }
            if slot.isDirty != dirty.contains(index) { problems.append("slot \(index): isDirty \(slot.isDirty) disagrees with the dirty list") }
            if !slot.isDirty, slot.wanted != slot.applied { problems.append("slot \(index) wants \(slot.wanted) but the array has \(slot.applied) and it is not dirty") }
            if slot.waits.isEmpty, !slot.isDirty { problems.append("slot \(index) is empty but not dirty") }
            for wait in slot.waits {
                if !seen.insert(wait.id).inserted { problems.append("wait \(wait.id.raw) listed twice") }
                guard let registration = registrations[wait.id] else {
                    problems.append("slot \(index) lists ended wait \(wait.id.raw)")
                    continue
                }
                if registration.socket != slot.socket || registration.interest != wait.interest || registration.interest == .interruptionOnly {
                    problems.append("wait \(wait.id.raw) is in the wrong slot")
                }
            }
        }
        for (socket, ids) in parked {
            if ids.isEmpty { problems.append("an empty parking list is kept") }
            for id in ids {
                if !seen.insert(id).inserted { problems.append("wait \(id.raw) listed twice") }
                if registrations[id]?.socket != socket || registrations[id]?.interest != .interruptionOnly {
                    problems.append("parked wait \(id.raw) does not match its registration")
                }
            }
        }
        if seen.count != registrations.count { problems.append("\(registrations.count) registrations but \(seen.count) listed waits") }
        let withDeadline = registrations.values.filter { $0.deadline != nil }.count
        if withDeadline != liveDeadlines { problems.append("liveDeadlines \(liveDeadlines), counted \(withDeadline)") }
        let inHeap = Set(deadlines.entries.map(\.id))
        for (id, registration) in registrations where registration.deadline != nil && !inHeap.contains(id) {
            problems.append("the deadline of wait \(id.raw) is not in the heap")
        }
        let withDemotion = registrations.values.filter { $0.demoteAt != nil }.count
        if withDemotion != liveDemotions { problems.append("liveDemotions \(liveDemotions), counted \(withDemotion)") }
        let demotionsInHeap = Set(demotions.entries.map(\.id))
        for (id, registration) in registrations where registration.demoteAt != nil {
            if !demotionsInHeap.contains(id) { problems.append("the demotion time of wait \(id.raw) is not in the heap") }
            if registration.interest == .interruptionOnly { problems.append("interruption-only wait \(id.raw) has a demotion time") }
        }
        if polling, polledCount > slots.count { problems.append("polledCount \(polledCount) > \(slots.count) slots during a poll") }
        if Set(dirty).count != dirty.count { problems.append("an index is listed dirty twice") }
        return problems
    }
}

/// A binary min-heap of wait deadlines.
struct DeadlineHeap {
    private(set) var entries: [(deadline: PollInstant, id: PollWaitID)] = []

    var count: Int { entries.count }
    var first: (deadline: PollInstant, id: PollWaitID)? { entries.first }

    mutating func push(_ deadline: PollInstant, _ id: PollWaitID) {
        entries.append((deadline, id))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].deadline < entries[parent].deadline else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    mutating func removeFirst() {
        guard !entries.isEmpty else { return }
        let last = entries.removeLast()
        guard !entries.isEmpty else { return }
        entries[0] = last
        siftDown(0)
    }

    /// Replaces the contents with `items`, in O(n).
    mutating func rebuild<S: Sequence>(_ items: S) where S.Element == (PollInstant, PollWaitID) {
        entries = items.map { (deadline: $0.0, id: $0.1) }
        var index = entries.count / 2
        while index > 0 {
            index -= 1
            siftDown(index)
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < entries.count else { return }
            var smallest = left
            let right = left + 1
            if right < entries.count, entries[right].deadline < entries[left].deadline { smallest = right }
            guard entries[smallest].deadline < entries[parent].deadline else { return }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

// Demoted waits cross from one loop's lock to another's.
extension PollRegistry.Registration: Sendable where Socket: Sendable, Waiter: Sendable {}
extension PollRegistry.Demotion: Sendable where Socket: Sendable, Waiter: Sendable {}
extension PollRegistry.AdoptAction: Sendable where Waiter: Sendable {}
