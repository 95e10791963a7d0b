internal import CNSS
import Synchronization

/// The dedicated thread that waits in `PR_Poll` and resumes the tasks that
/// wait for readiness.
///
/// It never reads or writes a socket: tasks try their operation, and on
/// `PR_WOULD_BLOCK_ERROR` call ``wait(for:on:deadline:)``, which registers a
/// one-shot interest and suspends. A pollable event wakes the thread when the
/// set of interests changes; with nothing to do it sleeps in `PR_Poll` with no
/// timeout, so an idle process uses no CPU.
final class PollLoop: Sendable {
    typealias Waiter = UnsafeContinuation<PollOutcome, Never>

    private let registry = Mutex(PollRegistry<PollSocket, Waiter>())
    private let wakeEvent: PollSocket
    /// True while a wakeup is written to the event and not yet consumed.
    private let wakePending = Atomic<Bool>(false)
    private let nextWaitID = Atomic<UInt64>(0)
    private let thread: Mutex<OwnedThread?> = Mutex(nil)

    init() throws {
        guard let event = PR_NewPollableEvent() else {
            throw TLSError.fromLastNSSError("creating the poll thread's wakeup event")
        }
        wakeEvent = PollSocket(fd: event)
        let started = OwnedThread(name: "nss-poll") { [self] in self.run() }
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
        PollWaitID(raw: nextWaitID.wrappingAdd(1, ordering: .relaxed).newValue)
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
            case .waitForPoll(let resume):
                for (waiter, outcome) in resume { waiter.resume(returning: outcome) }
                wake()
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

    private func wake() {
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
            PR_SetPollableEvent(wakeEvent.fd)
        }
    }

    private func run() {
        var descriptors: [PRPollDesc] = []
        var polled: [PollSocket] = []
        let readFlag = Int16(PR_POLL_READ)
        let writeFlag = Int16(PR_POLL_WRITE)
        while true {
            let plan = registry.withLock { registry -> PollRegistry<PollSocket, Waiter>.Plan? in
                registry.isShutDown ? nil : registry.beginPoll(now: .now)
            }
            guard let plan else { return }

            descriptors.removeAll(keepingCapacity: true)
            polled.removeAll(keepingCapacity: true)
            descriptors.append(PRPollDesc(fd: wakeEvent.fd, in_flags: readFlag, out_flags: 0))
            for entry in plan.entries {
                var flags: Int16 = 0
                if entry.read { flags |= readFlag }
                if entry.write { flags |= writeFlag }
                descriptors.append(PRPollDesc(fd: entry.socket.fd, in_flags: flags, out_flags: 0))
                polled.append(entry.socket)
            }

            let timeout = plan.timeout.map(Self.interval) ?? cnss_interval_no_timeout()
            let count = descriptors.withUnsafeMutableBufferPointer { buffer in
                PR_Poll(buffer.baseAddress, Int32(buffer.count), timeout)
            }

            var ready: [PollSocket] = []
            if count > 0 {
                if descriptors[0].out_flags != 0 {
                    // Consume the wakeup before clearing the flag, so a wake that
                    // races with us is either consumed here or written anew.
                    PR_WaitForPollableEvent(wakeEvent.fd)
                    wakePending.store(false, ordering: .releasing)
                }
                for index in 1..<descriptors.count where descriptors[index].out_flags != 0 {
                    ready.append(polled[index - 1])
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
