internal import CNSS
import Synchronization

/// NSS callbacks that answered `SECWouldBlock` and finish in a task: an
/// asynchronous certificate verdict, an asynchronously chosen client identity.
///
/// While one is outstanding NSS keeps the socket silent in `PR_Poll`, so every
/// task that drives the connection waits through ``wait(on:for:deadline:since:)``.
/// The task that ``start(_:)`` runs posts its result and interrupts those waits
/// (``WaitInterruptions``); the next I/O step calls ``deliver(to:)`` first,
/// which hands the result to NSS (`SSL_AuthCertificateComplete`,
/// `SSL_ClientCertCallbackComplete`), and then drives the handshake on.
final class DeferredCallbacks: Sendable {
    enum Result: Sendable {
        /// 0 accepts the certificate; an error code refuses it with its alert.
        case certificateVerdict(PRErrorCode)
        /// The client identity to send, or none.
        case clientIdentity(TLSIdentity?)
    }

    private struct State {
        var results: [Result] = []
        var tasks: [UInt64: Task<Void, Never>] = [:]
        var nextTask: UInt64 = 0
        var closed = false
        /// The code of a refused certificate, once a verdict refused one.
        var rejection: PRErrorCode?
    }

    private let state = Mutex(State())
    /// Whether `state.results` may hold something, so that ``deliver(to:)``
    /// costs one load before almost every read and handshake step. Set before
    /// the waits are interrupted, so that a wait that registers meanwhile
    /// sees it (``WaitInterruptions/wait(on:for:deadline:since:unless:)``).
    private let hasResults = Atomic<Bool>(false)
    /// The connection's interruptible waits, which a posted result ends.
    private let interruptions: WaitInterruptions

    init(interruptions: WaitInterruptions) {
        self.interruptions = interruptions
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
        if posted { interruptions.interruptWaits() }
    }

    /// Waits on the socket's loop for `interest`, or until a deferred
    /// callback has a result to deliver (then at once); with `mark`, also
    /// until the connection's waits are interrupted after it was taken.
    nonisolated(nonsending) func wait(on socket: SocketHandle, for interest: PollInterest, deadline: ContinuousClock.Instant? = nil, since mark: WaitInterruptions.Mark? = nil) async -> PollOutcome {
        await interruptions.wait(on: socket, for: interest, deadline: deadline, since: mark) {
            hasResults.load(ordering: .sequentiallyConsistent)
        }
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
