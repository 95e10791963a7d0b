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
/// `Socket` is the poll key (a `PRFileDesc` in production, an `Int` in tests);
/// `Waiter` is what gets resumed (a continuation in production).
struct PollRegistry<Socket: Hashable, Waiter> {
    struct Registration {
        var socket: Socket
        var interest: PollInterest
        var deadline: ContinuousClock.Instant?
        var waiter: Waiter
    }

    /// What the poll thread should pass to `PR_Poll`.
    struct Plan {
        /// Each socket once, with the union of its interests.
        var entries: [(socket: Socket, read: Bool, write: Bool)]
        /// How long to wait at most; `nil` waits until woken.
        var timeout: Duration?
    }

    enum RegisterAction {
        /// The registration is recorded; wake the poll thread so it polls the socket.
        case wakePoller
        /// The registration was refused: resume at once with this outcome.
        case resume(Waiter, PollOutcome)
    }

    enum QuiesceAction {
        /// Nothing polls the socket any more: it may be closed now. Resume the
        /// listed waits first.
        case closeNow(resume: [(Waiter, PollOutcome)])
        /// The poll thread is inside `PR_Poll` with this socket: wake it, and the
        /// quiesce waiter is resumed by ``endPoll(readySockets:failed:now:)``.
        case waitForPoll(resume: [(Waiter, PollOutcome)])
    }

    private(set) var registrations: [PollWaitID: Registration] = [:]
    /// Waits cancelled or interrupted before they registered, and how they end.
    private var endedEarly: [PollWaitID: PollOutcome] = [:]
    /// The sockets in the poll that is running now, or nil between polls.
    private var polling: Set<Socket>? = nil
    /// Closers waiting for the running poll to return.
    private var quiesceWaiters: [Waiter] = []
    private(set) var isShutDown = false

    init() {}

    var waitCount: Int { registrations.count }

    // MARK: Tasks

    mutating func register(
        _ id: PollWaitID,
        socket: Socket,
        interest: PollInterest,
        deadline: ContinuousClock.Instant?,
        waiter: Waiter
    ) -> RegisterAction {
        if isShutDown {
            return .resume(waiter, .shutDown)
        }
        if let outcome = endedEarly.removeValue(forKey: id) {
            return .resume(waiter, outcome)
        }
        registrations[id] = Registration(socket: socket, interest: interest, deadline: deadline, waiter: waiter)
        return .wakePoller
    }

    /// Cancels a wait. Returns its waiter if it was registered; otherwise
    /// remembers the cancellation for a registration still to come.
    mutating func cancel(_ id: PollWaitID) -> Waiter? {
        end(id, with: .cancelled)
    }

    /// Ends a wait with ``PollOutcome/interrupted``. Returns its waiter if it
    /// was registered; otherwise a registration still to come ends at once.
    mutating func interrupt(_ id: PollWaitID) -> Waiter? {
        end(id, with: .interrupted)
    }

    private mutating func end(_ id: PollWaitID, with outcome: PollOutcome) -> Waiter? {
        if let registration = registrations.removeValue(forKey: id) {
            return registration.waiter
        }
        // A cancellation outranks an interruption that came first.
        if endedEarly[id] != .cancelled { endedEarly[id] = outcome }
        return nil
    }

    /// Drops the memory of an early cancellation or interruption whose
    /// registration never came.
    mutating func forget(_ id: PollWaitID) {
        endedEarly.removeValue(forKey: id)
    }

    /// Ends every wait on `socket` so that it can be closed.
    mutating func quiesce(_ socket: Socket, closer: Waiter) -> QuiesceAction {
        var resume: [(Waiter, PollOutcome)] = []
        for (id, registration) in registrations where registration.socket == socket {
            registrations.removeValue(forKey: id)
            resume.append((registration.waiter, .closed))
        }
        if let polling, polling.contains(socket) {
            quiesceWaiters.append(closer)
            return .waitForPoll(resume: resume)
        }
        resume.append((closer, .ready))
        return .closeNow(resume: resume)
    }

    // MARK: Poll thread

    /// Starts a poll: returns the sockets to poll and the timeout.
    mutating func beginPoll(now: ContinuousClock.Instant) -> Plan {
        var order: [Socket] = []
        var flags: [Socket: (read: Bool, write: Bool)] = [:]
        var earliest: ContinuousClock.Instant? = nil
        for registration in registrations.values {
            if let deadline = registration.deadline {
                earliest = earliest.map { min($0, deadline) } ?? deadline
            }
            var entry = flags[registration.socket] ?? (false, false)
            let wasPolled = entry != (false, false)
            switch registration.interest {
            case .read: entry.read = true
            case .write: entry.write = true
            case .interruptionOnly: continue
            }
            if !wasPolled { order.append(registration.socket) }
            flags[registration.socket] = entry
        }
        polling = Set(order)
        let timeout = earliest.map { max(.zero, $0 - now) }
        return Plan(
            entries: order.map { socket in
                let entry = flags[socket] ?? (false, false)
                return (socket, entry.read, entry.write)
            },
            timeout: timeout
        )
    }

    /// Ends a poll. `readySockets` are those with non-zero `out_flags`; when
    /// `failed` is true (`PR_Poll` returned -1) every polled wait is resumed so
    /// its task retries and sees the real error.
    mutating func endPoll(readySockets: [Socket], failed: Bool, now: ContinuousClock.Instant) -> [(Waiter, PollOutcome)] {
        var resume: [(Waiter, PollOutcome)] = []
        let wake: Set<Socket> = failed ? (polling ?? []) : Set(readySockets)
        for (id, registration) in registrations {
            if wake.contains(registration.socket), registration.interest != .interruptionOnly {
                registrations.removeValue(forKey: id)
                resume.append((registration.waiter, .ready))
            } else if let deadline = registration.deadline, deadline <= now {
                registrations.removeValue(forKey: id)
                resume.append((registration.waiter, .timedOut))
            }
        }
        polling = nil
        resume.append(contentsOf: quiesceWaiters.map { ($0, .ready) })
        quiesceWaiters.removeAll()
        return resume
    }

    /// Ends every wait; later registrations are refused.
    mutating func shutDown() -> [(Waiter, PollOutcome)] {
        isShutDown = true
        var resume = registrations.values.map { ($0.waiter, PollOutcome.shutDown) }
        registrations.removeAll()
        resume.append(contentsOf: quiesceWaiters.map { ($0, .ready) })
        quiesceWaiters.removeAll()
        polling = nil
        return resume
    }
}
