/// Every handshake of a connection as a state machine with no I/O: the
/// initial one, and the later ones (renegotiation, post-handshake
/// authentication) that run on an established connection.
///
/// ``HandshakeDriver`` feeds it what each step and each wait on the socket's
/// loop returned; it answers with what to do next.
///
/// - The **initial** handshake steps with `SSL_ForceHandshake` and waits
///   whenever a step would block.
/// - A **later** handshake was started by a message of this side
///   (HelloRequest, ClientHello, CertificateRequest). NSS moves it on only
///   when something reads. So the driver *looks* for the handshake's result;
///   while there is none and no task of the application reads, it *pumps*
///   (reads once itself, keeping the application data for the next read);
///   while a task reads, that task's reads move NSS on and interrupt the
///   driver's wait. A timeout or a cancellation closes the connection: a
///   handshake stopped halfway leaves nothing to go on with.
struct HandshakeStateMachine: Sendable {
    enum Kind: Sendable {
        case initial
        case later
    }

    enum StepResult: Sendable {
        /// `SSL_ForceHandshake` returned `SECSuccess`.
        case complete
        /// It failed with `PR_WOULD_BLOCK_ERROR`.
        case wouldBlock
        /// It failed with another error.
        case failed(TLSError)
    }

    /// What a later handshake's pump found.
    enum PumpResult: Sendable {
        /// The read moved NSS on: it returned data (kept for the application)
        /// or consumed handshake records.
        case progress
        /// Nothing to read yet.
        case nothingToRead
        /// A task of the application is reading; its reads move NSS on.
        case readerActive
        /// The connection keeps as much unread application data as it may;
        /// the application must read before the handshake can go on.
        case bufferFull
        /// The connection ended or failed; the handshake cannot complete.
        case failed(TLSError)
    }

    enum Failure: Error, Sendable {
        case nss(TLSError)
        case timedOut
        case cancelled
        case closed
        case shutDown
    }

    enum Action: Sendable {
        /// Call `SSL_ForceHandshake` (initial handshake).
        case step
        /// Look whether the handshake has its result (later handshake).
        case look
        /// Read once while no task reads (later handshake).
        case pump
        /// Let other tasks on the executor run (a reader waiting for the
        /// connection takes the data just kept), then look again.
        case yieldThenLook
        /// Wait until the socket is readable (NSS's poll method turns this into
        /// whatever direction the handshake needs), or until a read of
        /// another task interrupts the wait.
        case waitReadable
        /// Wait only until a read of another task interrupts the wait.
        case waitForInterruption
        /// The handshake is done.
        case succeed
        case fail(Failure)
        /// Close the connection, then fail (a later handshake that timed out
        /// or was cancelled).
        case closeAndFail(Failure)
    }

    private enum State {
        case idle
        case stepping
        /// `afterEmptyPump`: the look follows a pump that found nothing, so
        /// a look that finds nothing waits instead of pumping again.
        case looking(afterEmptyPump: Bool)
        case pumping
        case yielding
        case waiting
        case succeeded
        case failed
    }

    let kind: Kind
    private var state: State = .idle
    /// `SSL_ForceHandshake` calls of the initial handshake, or pumps of a later one.
    private(set) var steps = 0

    init(kind: Kind = .initial) {
        self.kind = kind
    }

    var isFinished: Bool {
        switch state {
        case .succeeded, .failed: true
        default: false
        }
    }

    mutating func start() -> Action {
        guard case .idle = state else { preconditionFailure("a handshake starts once") }
        return nextMove()
    }

    /// What starts the handshake, and what follows a wait that ended
    /// without failing: a step of the initial one, a look at a later one.
    private mutating func nextMove() -> Action {
        switch kind {
        case .initial:
            state = .stepping
            return .step
        case .later:
            state = .looking(afterEmptyPump: false)
            return .look
        }
    }

    // MARK: The initial handshake

    mutating func stepped(_ result: StepResult) -> Action {
        guard case .stepping = state else { preconditionFailure("a step result arrives only after a step") }
        steps += 1
        switch result {
        case .complete:
            state = .succeeded
            return .succeed
        case .wouldBlock:
            state = .waiting
            return .waitReadable
        case .failed(let error):
            state = .failed
            return .fail(.nss(error))
        }
    }

    // MARK: Later handshakes

    mutating func looked(found: Bool) -> Action {
        guard case .looking(let afterEmptyPump) = state else { preconditionFailure("a look's result arrives only after a look") }
        if found {
            state = .succeeded
            return .succeed
        }
        if afterEmptyPump {
            state = .waiting
            return .waitReadable
        }
        state = .pumping
        return .pump
    }

    mutating func pumped(_ result: PumpResult) -> Action {
        guard case .pumping = state else { preconditionFailure("a pump's result arrives only after a pump") }
        switch result {
        case .progress:
            steps += 1
            state = .yielding
            return .yieldThenLook
        case .nothingToRead:
            steps += 1
            // The read may have finished the handshake without returning data.
            state = .looking(afterEmptyPump: true)
            return .look
        case .readerActive:
            state = .waiting
            return .waitReadable
        case .bufferFull:
            state = .waiting
            return .waitForInterruption
        case .failed(let error):
            steps += 1
            state = .failed
            return .fail(.nss(error))
        }
    }

    mutating func yielded() -> Action {
        guard case .yielding = state else { preconditionFailure("a yield ends only after a yield") }
        state = .looking(afterEmptyPump: false)
        return .look
    }

    // MARK: Both

    mutating func waited(_ outcome: PollOutcome) -> Action {
        guard case .waiting = state else { preconditionFailure("a wait outcome arrives only after a wait") }
        switch outcome {
        case .ready, .interrupted:
            return nextMove()
        case .timedOut:
            return fail(.timedOut, closing: kind == .later)
        case .cancelled:
            return fail(.cancelled, closing: kind == .later)
        case .closed:
            return fail(.closed, closing: false)
        case .shutDown:
            return fail(.shutDown, closing: false)
        }
    }

    private mutating func fail(_ failure: Failure, closing: Bool) -> Action {
        state = .failed
        return closing ? .closeAndFail(failure) : .fail(failure)
    }
}
