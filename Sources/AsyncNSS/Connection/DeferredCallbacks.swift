internal import CNSS
import Synchronization

/// NSS callbacks that answered `SECWouldBlock` and finish in a task: an
/// asynchronous certificate verdict, an asynchronously chosen client identity.
///
/// While one is outstanding NSS keeps the socket silent in `PR_Poll`, so every
/// task that drives the connection waits through ``wait(on:for:deadline:since:)``.
/// A finished task ``post(_:)``s its result and interrupts those waits; the
/// next I/O step calls ``deliver(to:)`` first, which hands the result to NSS
/// (`SSL_AuthCertificateComplete`, `SSL_ClientCertCallbackComplete`), and then
/// drives the handshake on.
final class DeferredCallbacks: Sendable {
    enum Result: Sendable {
        /// 0 accepts the certificate; an error code refuses it with its alert.
        case certificateVerdict(PRErrorCode)
        /// The client identity to send, or none.
        case clientIdentity(TLSIdentity?)
    }

    private struct State {
        var results: [Result] = []
        var waits: Set<PollWaitID> = []
        var tasks: [UInt64: Task<Void, Never>] = [:]
        var nextTask: UInt64 = 0
        var closed = false
        /// Weak: the socket keeps its callbacks, and so this object, alive
        /// until `PR_Close`; a strong reference back would be a cycle that
        /// keeps a socket dropped without `close()` open forever.
        weak var socket: SocketHandle?
        /// The code of a refused certificate, once a verdict refused one.
        var rejection: PRErrorCode?
    }

    private let state = Mutex(State())
    /// How many times ``interruptWaits()`` ran.
    private let interruptions = Atomic<UInt64>(0)
    /// Waits between their start and their end in ``wait(on:for:deadline:since:)``,
    /// so that ``interruptWaits()`` costs two atomic operations when nobody
    /// waits, which is the case after almost every read.
    private let activeWaits = Atomic<Int>(0)
    /// Whether `state.results` may hold something, so that ``deliver(to:)``
    /// costs one load before almost every read and handshake step.
    private let hasResults = Atomic<Bool>(false)

    /// The socket whose waits a posted result interrupts; set once it exists.
    func attach(_ socket: SocketHandle) {
        state.withLock { $0.socket = socket }
    }

    /// Runs `work` in a task of its own and posts what it returns, unless the
    /// connection closed meanwhile (which cancels the task).
    func start(_ work: @escaping @Sendable () async -> Result) {
        state.withLock { state in
            guard !state.closed else { return }
            let id = state.nextTask
            state.nextTask += 1
            state.tasks[id] = Task { [weak self] in
                let result = await work()
                self?.finish(id, with: result)
            }
        }
    }

    private func finish(_ id: UInt64, with result: Result) {
        let posted = state.withLock { state -> Bool in
            state.tasks[id] = nil
            guard !state.closed else { return false }
            state.results.append(result)
            hasResults.store(true, ordering: .sequentiallyConsistent)
            return true
        }
        if posted { interruptWaits() }
    }

    /// A point in the sequence of ``interruptWaits()`` calls; see
    /// ``wait(on:for:deadline:since:)``.
    struct InterruptionMark: Sendable, Equatable {
        fileprivate let count: UInt64
    }

    /// The current mark. Take it before looking at the connection's state;
    /// a wait made with it returns at once if an interruption came since.
    func interruptionMark() -> InterruptionMark {
        InterruptionMark(count: interruptions.load(ordering: .sequentiallyConsistent))
    }

    /// Ends every wait made through ``wait(on:for:deadline:since:)`` with
    /// ``PollOutcome/interrupted``, so that its task looks at the connection
    /// again: a result was posted, or another task's read moved NSS on.
    ///
    /// It costs two atomic operations while no wait is registered (the
    /// common case: a read with no rehandshake running). A wait that
    /// registers after this call does not see it unless it was made with an
    /// earlier mark (see ``wait(on:for:deadline:since:)``).
    func interruptWaits() {
        interruptions.wrappingAdd(1, ordering: .sequentiallyConsistent)
        guard activeWaits.load(ordering: .sequentiallyConsistent) > 0 else { return }
        let (socket, waits) = state.withLock { ($0.socket, $0.waits) }
        for wait in waits { socket?.interruptWait(wait) }
    }

    /// Waits on the poll thread for `interest`, or until a deferred callback
    /// has a result to deliver (then at once).
    ///
    /// With `mark`, it also returns ``PollOutcome/interrupted`` at once when
    /// ``interruptWaits()`` ran after the mark was taken. A rehandshake needs
    /// that: it looks at NSS's state on the actor, then suspends here, and the
    /// application's reader may run in between, finish the handshake with its
    /// read and interrupt before this wait is registered. Without the mark
    /// that interruption is lost and the rehandshake waits for bytes that may
    /// never come. (Being `nonisolated(nonsending)`, the wait now stays on
    /// the caller's actor until it is registered, which also closes that gap
    /// for callers on the connection's actor; the mark keeps it correct
    /// wherever the wait runs.)
    ///
    /// Why no interruption is lost: this wait counts itself in `activeWaits`,
    /// then compares the mark under the lock and registers its ID in the same
    /// critical section; ``interruptWaits()`` counts the interruption, then
    /// reads `activeWaits`. Both pairs are sequentially consistent, so either
    /// the comparison sees the new count, or ``interruptWaits()`` sees this
    /// wait counted and takes the lock after the critical section that
    /// registered the ID (taking it before would order its count before the
    /// comparison). A posted result is covered the same way by `results`.
    nonisolated(nonsending) func wait(on socket: SocketHandle, for interest: PollInterest, deadline: ContinuousClock.Instant? = nil, since mark: InterruptionMark? = nil) async -> PollOutcome {
        let id = socket.makeWaitID()
        activeWaits.wrappingAdd(1, ordering: .sequentiallyConsistent)
        defer { activeWaits.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
        let pending = state.withLock { state -> Bool in
            if !state.results.isEmpty { return true }
            if let mark, interruptions.load(ordering: .sequentiallyConsistent) != mark.count { return true }
            state.waits.insert(id)
            return false
        }
        if pending {
            socket.forgetWait(id)
            return .interrupted
        }
        let outcome = await socket.wait(for: interest, deadline: deadline, id: id)
        state.withLock { _ = $0.waits.remove(id) }
        return outcome
    }

    /// The error code of the last refused certificate. After NSS sent the
    /// alert it reports only SSL_ERROR_HANDSHAKE_FAILED; this is the reason.
    var rejection: PRErrorCode? { state.withLock { $0.rejection } }

    /// Hands every posted result to NSS. Call it with the descriptor, before
    /// the next `PR_Read`, `PR_Write` or `SSL_ForceHandshake`.
    func deliver(to fd: UnsafeMutablePointer<PRFileDesc>) {
        guard hasResults.load(ordering: .sequentiallyConsistent) else { return }
        let results = state.withLock { state -> [Result] in
            hasResults.store(false, ordering: .sequentiallyConsistent)
            defer { state.results.removeAll() }
            for case .certificateVerdict(let code) in state.results where code != 0 {
                state.rejection = code
            }
            return state.results
        }
        for result in results {
            switch result {
            case .certificateVerdict(let code):
                _ = SSL_AuthCertificateComplete(fd, code)
            case .clientIdentity(let identity):
                Self.completeClientCertificate(fd, identity)
            }
        }
    }

    /// Cancels the tasks still running; later results are dropped.
    func close() {
        let tasks = state.withLock { state -> [Task<Void, Never>] in
            state.closed = true
            state.results.removeAll()
            hasResults.store(false, ordering: .sequentiallyConsistent)
            defer { state.tasks.removeAll() }
            return Array(state.tasks.values)
        }
        for task in tasks { task.cancel() }
    }

    private static func completeClientCertificate(_ fd: UnsafeMutablePointer<PRFileDesc>, _ identity: TLSIdentity?) {
        guard let identity, let (certificate, key) = ConnectionCallbacks.copies(of: identity) else {
            _ = SSL_ClientCertCallbackComplete(fd, SECFailure, nil, nil)
            return
        }
        _ = SSL_ClientCertCallbackComplete(fd, SECSuccess, key, certificate)
    }
}
