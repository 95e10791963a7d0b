internal import CNSS
import Synchronization

/// The dedicated thread that waits in `PR_Poll` and resumes the tasks that
/// wait for readiness.
///
/// It never reads or writes a socket: tasks try their operation, and on
/// `PR_WOULD_BLOCK_ERROR` call ``wait(for:on:deadline:)``, which registers a
/// one-shot interest and suspends. A pollable event wakes the thread when a
/// read or write wait, or a deadline earlier than the poll's timeout, arrives
/// while `PR_Poll` runs; the registry asks for at most one wakeup per poll, and
/// none while the thread is between polls (it plans the change before polling
/// again).
/// With nothing to do it sleeps in `PR_Poll` with no timeout, so an idle
/// process uses no CPU.
///
/// The `PRPollDesc` array lives on the poll thread between polls; each plan
/// rewrites only the entries that changed (see ``PollRegistry``).
final class PollLoop: Sendable {
    typealias Waiter = UnsafeContinuation<PollOutcome, Never>

    private let registry = Mutex(PollRegistry<PollSocket, Waiter>())
    private let wakeEvent: PollSocket
    private let waitIDs: PollWaitIDSource
    private let thread: Mutex<OwnedThread?> = Mutex(nil)

    /// Starts a poll thread named `name`. Loops of one ``PollGroup`` share `ids`.
    init(name: String = "nss-poll", ids: PollWaitIDSource = PollWaitIDSource()) throws {
        guard let event = PR_NewPollableEvent() else {
            throw TLSError.fromLastNSSError("creating the poll thread's wakeup event")
        }
        wakeEvent = PollSocket(fd: event)
        waitIDs = ids
        let started = OwnedThread(name: name) { [self] in self.run() }
        thread.withLock { $0 = started }
    }

    /// Waits until `socket` may be ready for `interest`, the deadline passes,
    /// the task is cancelled, or the socket is closed.
    ///
    /// `isClosing` is checked under the registry lock, so a wait never
    /// registers after the closer has quiesced the socket.
    func wait(
        for interest: PollInterest,
        on socket: PollSocket,
        deadline: ContinuousClock.Instant? = nil,
        id: PollWaitID? = nil,
        isClosing: @Sendable () -> Bool = { false }
    ) async -> PollOutcome {
        let id = id ?? makeWaitID()
        let outcome = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: Waiter) in
                let action = registry.withLock { registry in
                    if isClosing() {
                        return PollRegistry<PollSocket, Waiter>.RegisterAction.resume(continuation, .closed)
                    }
                    return registry.register(id, socket: socket, interest: interest, deadline: deadline, waiter: continuation)
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
            let waiter = registry.withLock { $0.cancel(id) }
            waiter?.resume(returning: .cancelled)
        }
        if Task.isCancelled {
            registry.withLock { $0.forget(id) }
        }
        return outcome
    }

    /// A fresh wait ID, for a wait that another task may ``interrupt(_:)``.
    func makeWaitID() -> PollWaitID {
        waitIDs.make()
    }

    /// Ends the wait `id` with ``PollOutcome/interrupted``, now or as soon as
    /// it registers. The interrupted task looks at its state again.
    func interrupt(_ id: PollWaitID) {
        let waiter = registry.withLock { $0.interrupt(id) }
        waiter?.resume(returning: .interrupted)
    }

    /// Ends every wait on `socket` and returns once no `PR_Poll` call uses it,
    /// so that the caller may `PR_Close` it.
    func quiesce(_ socket: PollSocket) async {
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

    /// Ends every wait, stops the thread and joins it.
    func shutdown() {
        let resume = registry.withLock { $0.shutDown() }
        for (waiter, outcome) in resume { waiter.resume(returning: outcome) }
        wake()
        let joined = thread.withLock { thread -> OwnedThread? in
            defer { thread = nil }
            return thread
        }
        joined?.join()
        PR_DestroyPollableEvent(wakeEvent.fd)
    }

    /// The number of registered waits, for tests and diagnostics.
    var waitCount: Int { registry.withLock { $0.waitCount } }

    /// Writes the wakeup. The registry asks for it at most once per poll.
    private func wake() {
        PR_SetPollableEvent(wakeEvent.fd)
    }

    private func run() {
        // Entry 0 is the wakeup event; entry i + 1 is the registry's slot i.
        // Kept between polls and changed as each plan says.
        var descriptors: [PRPollDesc] = [PRPollDesc(fd: wakeEvent.fd, in_flags: Int16(PR_POLL_READ), out_flags: 0)]
        var ready: [PollSocket] = []
        let readFlag = Int16(PR_POLL_READ)
        let writeFlag = Int16(PR_POLL_WRITE)
        while true {
            let plan = registry.withLock { registry -> PollRegistry<PollSocket, Waiter>.Plan? in
                registry.isShutDown ? nil : registry.beginPoll(now: .now)
            }
            guard let plan else { return }

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

            let timeout = plan.timeout.map(Self.interval) ?? cnss_interval_no_timeout()
            let count = descriptors.withUnsafeMutableBufferPointer { buffer in
                PR_Poll(buffer.baseAddress, Int32(buffer.count), timeout)
            }

            ready.removeAll(keepingCapacity: true)
            if count > 0 {
                var found = 0
                if descriptors[0].out_flags != 0 {
                    // Consume the wakeup; PR_Poll reported it readable, so this does not block.
                    PR_WaitForPollableEvent(wakeEvent.fd)
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
            let resume = registry.withLock {
                $0.endPoll(readySockets: ready, failed: count < 0, now: .now)
            }
            for (waiter, outcome) in resume { waiter.resume(returning: outcome) }
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
