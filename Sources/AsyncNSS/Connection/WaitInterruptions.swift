import Synchronization

/// The waits of a connection's tasks that another task may end early, so that
/// the waiting task looks at the connection again: another task's read moved
/// NSS on (and may have finished a rehandshake), or a deferred callback posted
/// its result (``DeferredCallbacks``).
final class WaitInterruptions: Sendable {
    /// A point in the sequence of ``interruptWaits()`` calls; see
    /// ``wait(on:for:deadline:since:unless:)``.
    struct Mark: Sendable, Equatable {
        fileprivate let count: UInt64
    }

    private struct State {
        var waits = WaitIDs()
        /// Weak: the socket keeps its callbacks, and so this object, alive
        /// until `PR_Close`; a strong reference back would be a cycle that
        /// keeps a socket dropped without `close()` open forever.
        weak var socket: SocketHandle?
    }

    private let state = Mutex(State())
    /// How many times ``interruptWaits()`` ran.
    private let interruptions = Atomic<UInt64>(0)
    /// Waits between their start and their end in ``wait(on:for:deadline:since:unless:)``,
    /// so that ``interruptWaits()`` costs two atomic operations when nobody
    /// waits, which is the case after almost every read.
    private let activeWaits = Atomic<Int>(0)

    /// The socket whose waits ``interruptWaits()`` ends; set once it exists.
    func attach(_ socket: SocketHandle) {
        state.withLock { $0.socket = socket }
    }

    /// The current mark. Take it before looking at the connection's state;
    /// a wait made with it returns at once if an interruption came since.
    func interruptionMark() -> Mark {
        Mark(count: interruptions.load(ordering: .sequentiallyConsistent))
    }

    /// Ends every wait made through ``wait(on:for:deadline:since:unless:)``
    /// with ``PollOutcome/interrupted``.
    ///
    /// It costs two atomic operations while no wait is registered (the
    /// common case: a read with no rehandshake running). A wait that
    /// registers after this call does not see it unless it was made with an
    /// earlier mark, or its `pending` check sees what the caller published
    /// before calling this.
    func interruptWaits() {
        interruptions.wrappingAdd(1, ordering: .sequentiallyConsistent)
        guard activeWaits.load(ordering: .sequentiallyConsistent) > 0 else { return }
        let (socket, waits) = state.withLock { ($0.socket, $0.waits) }
        waits.forEach { socket?.interruptWait($0) }
    }

    /// Waits on the socket's loop for `interest`; returns
    /// ``PollOutcome/interrupted`` at once when `pending()` is true, or when
    /// `mark` is given and ``interruptWaits()`` ran after it was taken.
    ///
    /// A rehandshake needs the mark: it looks at NSS's state on the actor,
    /// then suspends here, and the application's reader may run in between,
    /// finish the handshake with its read and interrupt before this wait is
    /// registered. Without the mark that interruption is lost and the
    /// rehandshake waits for bytes that may never come. (Being
    /// `nonisolated(nonsending)`, the wait stays on the caller's actor until
    /// it is registered, which also closes that gap for callers on the
    /// connection's actor; the mark keeps it correct wherever the wait runs.)
    ///
    /// Why no interruption is lost: this wait counts itself in `activeWaits`,
    /// then, under the lock, checks `pending()` and the mark and registers
    /// its ID; ``interruptWaits()`` counts the interruption, then reads
    /// `activeWaits`. Both pairs are sequentially consistent, so either the
    /// check sees the new count, or ``interruptWaits()`` sees this wait
    /// counted and takes the lock after the critical section that registered
    /// the ID (taking it before would order its count before the check). The
    /// same holds for `pending()` when it reads a sequentially consistent
    /// atomic that its publisher sets before calling ``interruptWaits()``.
    nonisolated(nonsending) func wait(
        on socket: SocketHandle,
        for interest: PollInterest,
        deadline: ContinuousClock.Instant? = nil,
        since mark: Mark? = nil,
        unless pending: () -> Bool = { false }
    ) async -> PollOutcome {
        let id = socket.makeWaitID()
        activeWaits.wrappingAdd(1, ordering: .sequentiallyConsistent)
        defer { activeWaits.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
        let interrupted = state.withLock { state -> Bool in
            if pending() { return true }
            if let mark, interruptions.load(ordering: .sequentiallyConsistent) != mark.count { return true }
            state.waits.insert(id)
            return false
        }
        if interrupted {
            socket.forgetWait(id)
            return .interrupted
        }
        let outcome = await socket.wait(for: interest, deadline: deadline, id: id)
        state.withLock { $0.waits.remove(id) }
        return outcome
    }
}

/// The IDs of the waits under way: nearly always none or one (the reader's),
/// which is held inline; a set, with its own allocation, only while several
/// tasks wait at once. An idle connection keeps its reader's ID here.
private struct WaitIDs {
    private var first: PollWaitID?
    private var others: Set<PollWaitID> = []

    mutating func insert(_ id: PollWaitID) {
        if first == nil { first = id } else { others.insert(id) }
    }

    mutating func remove(_ id: PollWaitID) {
        if first == id { first = others.popFirst() } else { others.remove(id) }
    }

    func forEach(_ body: (PollWaitID) -> Void) {
        if let first { body(first) }
        others.forEach(body)
    }
}
