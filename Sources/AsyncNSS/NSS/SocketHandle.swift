internal import CNSS
import Synchronization

/// The one owner of a `PRFileDesc`.
///
/// NSPR calls go through ``withFD(_:_:)``; waits for readiness through
/// ``wait(for:deadline:)``. ``close()`` is idempotent: it stops new waits, ends
/// the current ones, lets the poll thread drop the descriptor, and only then
/// calls `PR_Close` (which sends close_notify on a TLS socket). The callback
/// context that NSS holds a raw pointer to stays alive until after `PR_Close`.
final class SocketHandle: RuntimeResource {
    private enum State {
        case open(PollSocket)
        /// A ``close()`` is under way; later callers wait here for its end.
        case closing(waiters: [UnsafeContinuation<Void, Never>])
        case closed
    }

    /// What the lock guards: the descriptor's state, and the objects NSS
    /// callbacks point to (released after `PR_Close`). One connection has
    /// one context, kept inline.
    private struct Guarded {
        var state: State
        var firstContext: AnyObject?
        var moreContexts: [AnyObject] = []

        var contexts: [AnyObject] { (firstContext.map { [$0] } ?? []) + moreContexts }
    }

    private let lock = Mutex<Void>(())
    // nonisolated(unsafe): read and written only inside `lock.withLock`, in
    // `withGuarded`, so every access is serialised. Kept beside the lock
    // rather than in a `Locked` box: every connection has a handle, and the
    // box was an allocation of its own.
    private nonisolated(unsafe) var guarded: Guarded
    private let closing = Atomic<Bool>(false)
    private let services: RuntimeServices
    /// The poll loop this descriptor's waits register on for its whole life
    /// (a hot loop, which moves waits that stay pending to its cold loop),
    /// and the executor of the connection that owns it.
    let pollLoop: PollLoop

    /// Takes `fd` over; its waits go to `loop`, or to the next loop of the
    /// runtime's group.
    init(_ fd: UnsafeMutablePointer<PRFileDesc>, services: RuntimeServices, loop: PollLoop? = nil) {
        self.guarded = Guarded(state: .open(PollSocket(fd: fd)))
        self.services = services
        self.pollLoop = loop ?? services.pollGroup.assign()
        services.resources.add(self)
    }

    deinit {
        // Dropped without close(). No task can be waiting (waits hold a
        // reference), but the poll thread may still have the descriptor in a
        // `PR_Poll` array: it closes after a quiesce, in the background. The
        // DroppedSocket is registered before this handle leaves the
        // registry, so a shutdown always finds one of them.
        let (state, contexts) = withGuarded { ($0.state, $0.contexts) }
        if case .open(let socket) = state {
            DroppedSocket.close(socket, pollLoop: pollLoop, callbackContexts: contexts, services: services)
        }
        services.resources.remove(ObjectIdentifier(self))
    }

    /// Keeps `context` alive for as long as the descriptor is open. Never
    /// inlined, like `withState`: see `withGuarded`.
    @inline(never)
    func retainCallbackContext(_ context: AnyObject) {
        withGuarded { guarded in
            if guarded.firstContext == nil { guarded.firstContext = context } else { guarded.moreContexts.append(context) }
        }
    }

    /// Never inlined, nor are `withState` and `retainCallbackContext`:
    /// inlined, each call site added room for the guarded value and the
    /// closures to the async frame around it (the ClientHello peek that
    /// picks an identity by name grew from 1,712 to 3,856 bytes, the
    /// accepting handshake, whose frame its task keeps, by 160).
    @inline(never)
    private func withGuarded<Result>(_ body: (inout Guarded) throws -> Result) rethrows -> Result {
        try lock.withLock { _ in try body(&guarded) }
    }

    @inline(never)
    private func withState<Result>(_ body: (inout State) throws -> Result) rethrows -> Result {
        try withGuarded { try body(&$0.state) }
    }

    var isOpen: Bool {
        withState { if case .open = $0 { true } else { false } }
    }

    /// Runs `body` with the open descriptor.
    ///
    /// - Throws: ``TLSError/Kind/closed`` once ``close()`` has started.
    func withFD<Result>(_ operation: @autoclosure () -> String, _ body: (UnsafeMutablePointer<PRFileDesc>) throws -> Result) throws -> Result {
        try withState { state in
            guard case .open(let socket) = state else {
                throw TLSError(kind: .closed, operation: operation(), message: "the socket is closed")
            }
            return try body(socket.fd)
        }
    }

    /// Waits on the poll thread until the descriptor may be ready for `interest`.
    /// Runs on the caller's executor, as ``PollLoop/wait(for:on:deadline:id:isClosing:)`` does.
    nonisolated(nonsending) func wait(for interest: PollInterest, deadline: ContinuousClock.Instant? = nil, id: PollWaitID? = nil) async -> PollOutcome {
        guard case .open(let socket) = withState({ $0 }) else {
            if let id { pollLoop.forget(id) }
            return .closed
        }
        return await pollLoop.wait(for: interest, on: socket, deadline: deadline, id: id) { [self] in
            self.closing.load(ordering: .acquiring)
        }
    }

    /// How a ``pause(for:)`` ended.
    enum PauseEnd {
        /// The duration passed (or an interruption cut it short).
        case elapsed
        /// The socket was closed, or the runtime shut down.
        case closed
        /// The waiting task was cancelled.
        case cancelled
    }

    /// Waits `duration` on the poll thread, as a deadline with no readiness
    /// on this socket, rather than with `Task.sleep`: the pause ends as soon
    /// as the socket closes, and it opens no descriptor. (A process's first
    /// dispatch timer makes libdispatch open a timerfd and keep it; while the
    /// process is out of descriptors, or once `nss-tls serve` has announced
    /// its address, that descriptor could take the slot a listener keeps free
    /// for when the table is full.)
    nonisolated(nonsending) func pause(for duration: Duration) async -> PauseEnd {
        switch await wait(for: .interruptionOnly, deadline: .now + duration) {
        case .timedOut, .interrupted, .ready: .elapsed
        case .closed, .shutDown: .closed
        case .cancelled: .cancelled
        }
    }

    /// A wait ID for ``wait(for:deadline:id:)`` that ``interruptWait(_:)`` can end.
    func makeWaitID() -> PollWaitID { pollLoop.makeWaitID() }

    /// Ends the wait `id` early with ``PollOutcome/interrupted``.
    func interruptWait(_ id: PollWaitID) { pollLoop.interrupt(id) }

    /// Drops an ID from ``makeWaitID()`` whose wait will not be made.
    func forgetWait(_ id: PollWaitID) { pollLoop.forget(id) }

    /// Closes the descriptor once no poll uses it. Idempotent: a call made
    /// while another one is under way returns when that one has closed the
    /// descriptor, so that after any call returns it is closed (shutdown
    /// relies on that before it shuts NSS down).
    func close() async {
        let socket = withState { state -> PollSocket? in
            guard case .open(let socket) = state else { return nil }
            state = .closing(waiters: [])
            closing.store(true, ordering: .releasing)
            return socket
        }
        guard let socket else {
            await withUnsafeContinuation { (waiter: UnsafeContinuation<Void, Never>) in
                let closed = withState { state -> Bool in
                    guard case .closing(let waiters) = state else { return true }
                    state = .closing(waiters: waiters + [waiter])
                    return false
                }
                if closed { waiter.resume() }
            }
            return
        }
        await Self.quiesceAndClose(socket, on: pollLoop)
        let waiters = withState { state -> [UnsafeContinuation<Void, Never>] in
            defer { state = .closed }
            guard case .closing(let waiters) = state else { return [] }
            return waiters
        }
        withGuarded { guarded in
            guarded.firstContext = nil
            guarded.moreContexts.removeAll()
        }
        services.resources.remove(ObjectIdentifier(self))
        for waiter in waiters { waiter.resume() }
    }

    /// Whether ``close()`` has finished; for tests.
    var isClosed: Bool {
        withState { if case .closed = $0 { true } else { false } }
    }

    /// Waits until no `PR_Poll` uses `socket`, then closes it: the end of
    /// ``close()``, and of a ``DroppedSocket``.
    static func quiesceAndClose(_ socket: PollSocket, on pollLoop: PollLoop) async {
        await pollLoop.quiesce(socket)
        discardUnreadInput(socket.fd)
        PR_Close(socket.fd)
    }

    /// Reads and drops what the kernel holds for the TCP socket under the
    /// TLS layer. Closing a socket with unread input sends a reset instead of
    /// a FIN, and a reset makes the peer discard what it has not read yet:
    /// the alert that explains a failed handshake, or the close_notify.
    /// Never inlined: its buffer stays on the thread's stack, out of the
    /// async frames of the close paths.
    @inline(never)
    private static func discardUnreadInput(_ fd: UnsafeMutablePointer<PRFileDesc>) {
        guard let tcp = PR_GetIdentitiesLayer(fd, PR_NSPR_IO_LAYER) else { return }
        // On the stack: every close passes here, and the bytes are thrown away.
        withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 1) { buffer in
            for _ in 0..<64 {
                let count = PR_Recv(tcp, buffer.baseAddress, Int32(buffer.count), 0, PRIntervalTime(PR_INTERVAL_NO_WAIT))
                if count <= 0 { return }
            }
        }
    }

    func releaseForShutdown() async {
        await close()
    }
}

/// Carries a value across a concurrency boundary where the compiler cannot see
/// that it is safe.
// @unchecked Sendable: used only to move a value into a task that becomes
// its sole user; every use site states why nothing else touches it.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
