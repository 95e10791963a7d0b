/// The initial handshake as a state machine with no I/O.
///
/// The driver feeds it the result of each `SSL_ForceHandshake` step and of each
/// wait on the poll thread; it answers with what to do next.
struct HandshakeStateMachine: Sendable {
    enum StepResult: Sendable {
        /// `SSL_ForceHandshake` returned `SECSuccess`.
        case complete
        /// It failed with `PR_WOULD_BLOCK_ERROR`.
        case wouldBlock
        /// It failed with another error.
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
        /// Call `SSL_ForceHandshake`.
        case step
        /// Wait until the socket is readable (NSS's poll method turns this into
        /// whatever direction the handshake needs).
        case waitReadable
        /// The handshake is done.
        case succeed
        case fail(Failure)
    }

    private enum State {
        case idle
        case stepping
        case waiting
        case succeeded
        case failed
    }

    private var state: State = .idle
    private(set) var steps = 0

    var isFinished: Bool { state == .succeeded || state == .failed }

    mutating func start() -> Action {
        precondition(state == .idle, "a handshake starts once")
        state = .stepping
        return .step
    }

    mutating func stepped(_ result: StepResult) -> Action {
        precondition(state == .stepping, "a step result arrives only after a step")
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

    mutating func waited(_ outcome: PollOutcome) -> Action {
        precondition(state == .waiting, "a wait outcome arrives only after a wait")
        switch outcome {
        case .ready, .interrupted:
            state = .stepping
            return .step
        case .timedOut:
            state = .failed
            return .fail(.timedOut)
        case .cancelled:
            state = .failed
            return .fail(.cancelled)
        case .closed:
            state = .failed
            return .fail(.closed)
        case .shutDown:
            state = .failed
            return .fail(.shutDown)
        }
    }
}
