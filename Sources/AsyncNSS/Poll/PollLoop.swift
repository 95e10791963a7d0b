internal import CNSS
import Synchronization

/// An event loop: a thread that waits in `PR_Poll`, resumes the tasks that
/// wait for readiness, and then runs the jobs queued for it, as the executor
/// of the connections it polls (see `PollLoop+Executor.swift`).
///
/// Tasks try their operation, and on `PR_WOULD_BLOCK_ERROR` call
/// ``wait(for:on:deadline:id:isClosing:)``, which registers a one-shot
/// interest and suspends; when the task runs on this loop, it continues here
/// right after the poll that ended its wait. A ``LoopWakeup`` wakes the thread when a
/// read or write wait, or a deadline earlier than the poll's timeout, arrives
/// while `PR_Poll` runs; the registry asks for at most one wakeup per poll, and
/// none while the thread is between polls (it plans the change before polling
/// again).
/// With nothing to do it sleeps in `PR_Poll` with no timeout, so an idle
/// process uses no CPU.
///
/// The `PRPollDesc` array lives on the poll thread between polls; each plan
/// rewrites only the entries that changed (see ``PollRegistry``).
///
/// **Hot and cold.** A loop made with a `cold` partner is a *hot* loop: tasks
/// register on it, and a read or write wait still pending after
/// `demotionDelay` is moved, in a batch, to the cold loop (same continuation,
/// deadline and wait ID; see ``PollRegistry/takeDueDemotions(now:batchCost:)``).
/// A busy hot loop moves waits sooner, once they are ``minimumDemotionAge``
/// old and its polls since the last batch have scanned as many entries as the
/// cold loop's array plus ``coldWakeupCost``. So the
/// hot `PR_Poll` scans only recently active sockets, and the cold one, which
/// holds the idle ones, is woken only when one of them becomes ready, a
/// deadline there passes, or a batch arrives (at most one per
/// `demotionDelay`, or per cold array's worth of hot scanning).
/// Cancellation, ``interrupt(_:)`` and ``quiesce(_:)`` go
/// through the hot loop, which reaches into the cold one; see
/// ``endAnywhere(_:_:)`` for the lock order that makes a move atomic.
///
/// Two things differ from a single loop, both checked against `ssl_Poll`
/// (`lib/ssl/sslsock.c`, NSS 3.87):
/// - A socket may be in both `PR_Poll` arrays at once: a cold wait that was
///   cancelled or interrupted leaves its entry in the running cold poll
///   (removed when that poll returns) while the task's next wait is on the
///   hot loop. `ssl_Poll` only reads the socket's state (`SSL_DataPending`
///   takes its own lock), as it already does while a task does I/O on another
///   thread, and `poll(2)` allows the same descriptor in two calls. The cold
///   loop may wake once for nothing. ``quiesce(_:)`` covers both arrays.
/// - A registration wakes only its own (hot) loop, so a cold wait on the same
///   socket keeps the interest the SSL layer chose when the cold poll began
///   (a single loop re-polls every socket on that wakeup). After the first
///   handshake `ssl_Poll` changes its choice only when decrypted data is
///   pending, which only a read produces: there is one reader at a time, and
///   each read, like each deferred callback result, interrupts the
///   connection's other waits (`DeferredCallbacks.interruptWaits`), which
///   ``interrupt(_:)`` finds on either loop. Before the first handshake
///   completes, one task drives the socket.
final class PollLoop: Sendable {
    typealias Waiter = UnsafeContinuation<PollOutcome, Never>
    typealias Registry = PollRegistry<PollSocket, Waiter>

    /// How long a read or write wait stays on a hot loop before it may move to
    /// the cold loop. Waits move in batches of at most one per this delay, so
    /// a wait moves after one to two delays.
    static let defaultDemotionDelay: Duration = .seconds(1)

    /// The youngest a wait may be when a busy hot loop moves it early:
    /// long enough for a peer's next flight or request to arrive on most
    /// networks, short enough that the waits of new idle connections do not
    /// fill the hot array while connections open.
    static let minimumDemotionAge: Duration = .milliseconds(250)

    /// What a batch costs the cold loop beyond its array, in poll-array
    /// entries. It covers the wakeup, the adoption and the extra `PR_Poll`,
    /// about 50 µs at the 0.15–0.3 µs an entry costs here.
    static let coldWakeupCost = 256

    /// The socket entries of this loop's latest poll, which a hot loop reads
    /// to price a batch of demotions to this loop. Kept only by loops without
    /// a cold partner (a cold loop, or a single one): no loop reads a hot
    /// loop's.
    private let polledSockets = Atomic<Int>(0)

    private let registry: Mutex<Registry>
    /// What wakes this loop from `PR_Poll`; internal for tests.
    let wakeup: LoopWakeup
    private let waitIDs: PollWaitIDSource
    private let thread: Mutex<OwnedThread?> = Mutex(nil)
    /// Where waits pending for `demotionDelay` move; nil for a cold loop or a
    /// loop on its own.
    let cold: PollLoop?
    private let demotionDelay: Duration
    /// The jobs of the tasks and actors that run on this loop.
    let jobs = LoopJobs()

    /// Starts a poll thread named `name`. Loops of one ``PollGroup`` share `ids`.
    /// With `cold`, this is a hot loop that moves waits pending for
    /// `demotionDelay` there.
    init(
        name: String,
        ids: PollWaitIDSource,
        cold: PollLoop? = nil,
        demotionDelay: Duration = PollLoop.defaultDemotionDelay
    ) throws {
        wakeup = try LoopWakeup()
        waitIDs = ids
        self.cold = cold
        self.demotionDelay = demotionDelay
        let earlyLead = demotionDelay - min(demotionDelay, Self.minimumDemotionAge)
        registry = Mutex(PollRegistry(
            demotionBatchWindow: cold == nil ? .zero : demotionDelay,
            earlyDemotionLead: cold == nil ? .zero : earlyLead
        ))
        let started = OwnedThread(name: name) { [self] in self.run() }
        thread.withLock { $0 = started }
    }

    /// Waits until `socket` may be ready for `interest`, the deadline passes,
    /// the task is cancelled, or the socket is closed.
    ///
    /// `isClosing` is checked under the registry lock, so a wait never
    /// registers after the closer has quiesced the socket.
    ///
    /// `nonisolated(nonsending)`: the wait registers on the caller's executor
    /// (usually a connection's actor) and the task resumes there, without a
    /// hop to the generic executor and back for every wait; so does the
    /// cancellation handler around it (``withIsolatedCancellationHandler(isolation:operation:onCancel:)``).
    nonisolated(nonsending) func wait(
        for interest: PollInterest,
        on socket: PollSocket,
        deadline: ContinuousClock.Instant? = nil,
        id: PollWaitID? = nil,
        isClosing: @Sendable () -> Bool = { false }
    ) async -> PollOutcome {
        // An ID from the caller may be interrupted by another task, before or
        // after this wait: once the wait returns, the registry forgets it.
        // A wait with an ID of its own cannot be interrupted: nothing to announce.
        let interruptible = id != nil
        let id = id ?? waitIDs.make()
        let demoteAt: ContinuousClock.Instant? = cold != nil && interest != .interruptionOnly ? .now + demotionDelay : nil
        let outcome = await withIsolatedCancellationHandler {
            await withUnsafeContinuation { (continuation: Waiter) in
                let action = registry.withLock { registry in
                    if isClosing() {
                        return PollRegistry<PollSocket, Waiter>.RegisterAction.resume(continuation, .closed)
                    }
                    return registry.register(id, socket: socket, interest: interest, deadline: deadline, waiter: continuation, demoteAt: demoteAt)
                }
                switch action {
                case .wakePoller:
                    wake()
                case .registered:
                    break
                case .resume(let waiter, let outcome):
                    waiter.resume(returning: outcome)
                }
            }
        } onCancel: {
            let waiter = endAnywhere(id, .cancelled)
            waiter?.resume(returning: .cancelled)
        }
        if interruptible || Task.isCancelled {
            registry.withLock { $0.forget(id) }
        }
        return outcome
    }

    /// A fresh wait ID, for a wait that another task may ``interrupt(_:)``
    /// even before it registers. Pass it to ``wait(for:on:deadline:id:isClosing:)``,
    /// or to ``forget(_:)`` if the wait will not be made.
    func makeWaitID() -> PollWaitID {
        let id = waitIDs.make()
        registry.withLock { $0.announce(id) }
        return id
    }

    /// Drops what is remembered for a wait ID from ``makeWaitID()`` whose
    /// wait was never made.
    func forget(_ id: PollWaitID) {
        registry.withLock { $0.forget(id) }
    }

    /// How many early endings and announced IDs the registry remembers; for tests.
    var rememberedCount: Int { registry.withLock { $0.rememberedCount } }

    /// Ends the wait `id` with ``PollOutcome/interrupted``, now or as soon as
    /// it registers. The interrupted task looks at its state again.
    func interrupt(_ id: PollWaitID) {
        let waiter = endAnywhere(id, .interrupted)
        waiter?.resume(returning: .interrupted)
    }

    /// Ends the wait `id` with `outcome` (cancelled or interrupted) on this
    /// loop or, if it was demoted, on the cold loop; if it is on neither, a
    /// registration still to come (always on this loop) ends at once. Returns
    /// the waiter to resume, which the caller resumes with no lock held.
    ///
    /// Why the wait is found wherever it is, and ended exactly once: at any
    /// moment the wait is in exactly one of four states: not yet registered,
    /// registered here, registered on the cold loop, or ended. The steps
    /// between them and the locks they hold:
    /// - registering (not yet → here): this loop's lock;
    /// - demotion (here → cold): this loop's thread, holding this loop's lock
    ///   and, inside it, the cold loop's lock;
    /// - ending here (readiness, deadline, quiesce, shutdown): this loop's lock;
    /// - ending on the cold loop: the cold loop's lock.
    /// Nothing moves a wait back (a resumed task's next wait has a new ID).
    /// This method holds this loop's lock from its first look to its last, so
    /// neither of the first two steps can happen meanwhile. If the wait is
    /// here, it ends here. If not, it is either not yet registered (and stays
    /// so), or on the cold loop, or ended; the look at the cold loop, under
    /// the cold lock, ends it there or shows it is not there; in that case it
    /// is remembered here, where a registration still to come would arrive
    /// (for a wait that already ended this is the same harmless leftover as
    /// on a single loop, cleared by `forget` after a cancellation). Every
    /// thread that holds both locks takes this loop's first (the cold loop's
    /// thread takes only its own), so there is no deadlock.
    private func endAnywhere(_ id: PollWaitID, _ outcome: PollOutcome) -> Waiter? {
        registry.withLock { registry in
            let elsewhere: (PollWaitID) -> Waiter? = { id in
                self.cold?.registry.withLock { $0.endIfRegistered(id) }
            }
            return outcome == .cancelled
                ? registry.cancel(id, elsewhere: elsewhere)
                : registry.interrupt(id, elsewhere: elsewhere)
        }
    }

    /// Ends every wait on `socket` and returns once no `PR_Poll` call uses it,
    /// so that the caller may `PR_Close` it.
    ///
    /// On a hot loop this quiesces the hot loop, *then* the cold one: after
    /// the first step no wait for the socket is left here and none can
    /// register (the caller marked the socket closing first), so none can be
    /// demoted after the cold loop was quiesced. The cold step is needed even
    /// when no wait of the socket was demoted: a cold wait that was cancelled
    /// or interrupted leaves its slot in the running cold `PR_Poll` until that
    /// poll returns.
    func quiesce(_ socket: PollSocket) async {
        await quiesceHere(socket)
        if let cold { await cold.quiesceHere(socket) }
    }

    private func quiesceHere(_ socket: PollSocket) async {
        // Nothing to end or wait for: skip the continuation (the common case
        // on the cold loop). Same as the registry's `closeNow` with no waits.
        guard registry.withLock({ $0.tracks(socket) }) else { return }
        _ = await withUnsafeContinuation { (closer: Waiter) in
            let action = registry.withLock { $0.quiesce(socket, closer: closer) }
            switch action {
            case .closeNow(let resume):
                for (waiter, outcome) in resume { waiter.resume(returning: outcome) }
            case .waitForPoll(let resume, let wakePoller):
                for (waiter, outcome) in resume { waiter.resume(returning: outcome) }
                if wakePoller { wake() }
            }
        }
    }

    /// Ends every wait, stops the thread and joins it. Closers that wait
    /// for a running poll go on only once that poll has returned. Called
    /// from a job on this loop, it cannot join its own thread: another
    /// thread joins it once the job has returned.
    func shutdown() {
        let resume = registry.withLock { $0.shutDown() }
        for (waiter, outcome) in resume { waiter.resume(returning: outcome) }
        wake()
        let joined = thread.withLock { thread -> OwnedThread? in
            defer { thread = nil }
            return thread
        }
        guard let joined else { return }
        if jobs.isRunnerThread {
            OwnedThread(name: "nss-poll-join") { [wakeup] in
                joined.join()
                wakeup.destroy()
            }.detach()
            return
        }
        joined.join()
        wakeup.destroy()
    }

    /// The number of waits registered on this loop (not its cold loop), for
    /// tests and diagnostics.
    var waitCount: Int { registry.withLock { $0.waitCount } }

    /// Writes the wakeup. The registry asks for it at most once per poll, and
    /// the job queue at most once per turn of the loop.
    func wake() {
        wakeup.set()
    }

    private func run() {
        jobs.attachLoopThread()
        defer { jobs.stop { [self] job in runJob(job) } }
        // Entry 0 is the wakeup; entry i + 1 is the registry's slot i.
        // Kept between polls and changed as each plan says.
        var descriptors: [PRPollDesc] = [PRPollDesc(fd: wakeup.pollable.fd, in_flags: Int16(PR_POLL_READ), out_flags: 0)]
        var ready: [PollSocket] = []
        var batch: [UnownedJob] = []
        let readFlag = Int16(PR_POLL_READ)
        let writeFlag = Int16(PR_POLL_WRITE)
        while true {
            let plan = registry.withLock { registry -> PollRegistry<PollSocket, Waiter>.Plan? in
                registry.isShutDown ? nil : registry.beginPoll(now: .now)
            }
            guard let plan else { return }
            if cold == nil { polledSockets.store(plan.count, ordering: .relaxed) }

            let wanted = plan.count + 1
            if descriptors.count > wanted {
                descriptors.removeLast(descriptors.count - wanted)
            }
            while descriptors.count < wanted {
                // Placeholder; every new index is in the plan's changes.
                descriptors.append(PRPollDesc(fd: nil, in_flags: 0, out_flags: 0))
            }
            for change in plan.changes {
                var flags: Int16 = 0
                if change.read { flags |= readFlag }
                if change.write { flags |= writeFlag }
                descriptors[change.index + 1] = PRPollDesc(fd: change.socket.fd, in_flags: flags, out_flags: 0)
            }

            // Queued jobs run right after this poll, so it must not sleep.
            let timeout = jobs.hasJobs ? PRIntervalTime(0) : plan.timeout.map(Self.interval) ?? cnss_interval_no_timeout()
            let count = descriptors.withUnsafeMutableBufferPointer { buffer in
                PR_Poll(buffer.baseAddress, Int32(buffer.count), timeout)
            }

            ready.removeAll(keepingCapacity: true)
            if count > 0 {
                var found = 0
                if descriptors[0].out_flags != 0 {
                    wakeup.consume()
                    found += 1
                }
                var index = 1
                while found < count, index < descriptors.count {
                    if descriptors[index].out_flags != 0, let fd = descriptors[index].fd {
                        ready.append(PollSocket(fd: fd))
                        found += 1
                    }
                    index += 1
                }
            }
            let now = ContinuousClock.now
            let (resume, adopted) = registry.withLock { registry -> ([(Waiter, PollOutcome)], Registry.AdoptAction?) in
                let resume = registry.endPoll(readySockets: ready, failed: count < 0, now: now)
                guard let cold else { return (resume, nil) }
                let batchCost = cold.polledSockets.load(ordering: .relaxed) + Self.coldWakeupCost
                let demoted = registry.takeDueDemotions(now: now, batchCost: batchCost)
                if demoted.isEmpty { return (resume, nil) }
                // Hot lock, then cold lock: see `endAnywhere` for why the
                // move must happen with both held.
                let adopted = cold.registry.withLock { $0.adopt(demoted) }
                return (resume, adopted)
            }
            for (waiter, outcome) in resume { waiter.resume(returning: outcome) }
            if let adopted {
                for (waiter, outcome) in adopted.resume { waiter.resume(returning: outcome) }
                if adopted.wakePoller { cold?.wake() }
            }
            // The tasks just resumed, and whatever else was enqueued, run
            // here: a wait that ends continues on the thread that polled it.
            runQueuedJobs(&batch)
        }
    }

    /// At most this many jobs run between two polls, so that tasks that keep
    /// enqueueing jobs on the loop (each `await` that changes executor is
    /// one) cannot keep it from polling its sockets.
    static let jobsPerTurn = 256

    /// Runs the queued jobs, and those they queue in turn, until none is
    /// left or ``jobsPerTurn`` have run. A task whose `await` moves it
    /// between the loop's serial and task executor queues a job and goes on
    /// in the same turn: a chain of such hops costs no `PR_Poll` each.
    private func runQueuedJobs(_ batch: inout [UnownedJob]) {
        var ran = 0
        while ran < Self.jobsPerTurn {
            jobs.take(into: &batch)
            if batch.isEmpty { return }
            for job in batch { runJob(job) }
            ran += batch.count
            batch.removeAll(keepingCapacity: true)
        }
    }

    /// Converts a timeout to NSPR ticks, rounding up so a deadline is never
    /// reported before it has passed.
    private static func interval(_ duration: Duration) -> PRIntervalTime {
        let (seconds, attoseconds) = duration.components
        let milliseconds = max(0, seconds) * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return PR_MillisecondsToInterval(PRUint32(clamping: milliseconds + 1))
    }
}
