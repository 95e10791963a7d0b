/// The life of a connection's read and write sides, as a state machine with no I/O.
///
/// ``TLSConnection`` reports what NSS and the poll thread returned; the machine
/// answers with what to do. It decides how the inbound stream ends: a
/// close_notify ends it cleanly, a bare TCP close is reported as truncation.
struct ConnectionStateMachine: Sendable {
    enum ReadResult: Sendable {
        case bytes([UInt8])
        /// `PR_Read` returned 0; `closeNotify` tells whether the peer sent close_notify first.
        case endOfStream(closeNotify: Bool)
        case wouldBlock
        /// An error after which reading may go on (a refused renegotiation).
        case recoverable
        case failed(TLSError)
    }

    enum ReadAction: Sendable {
        case read
        case waitReadable
        case deliver([UInt8])
        case deliverEnd
        /// Fail this read; the connection stays as it is.
        case fail(TLSError)
        /// Close the connection, then fail the read (`nil` means `CancellationError`).
        case closeAndFail(TLSError?)
    }

    enum WriteAction: Sendable {
        case write
        case fail(TLSError)
    }

    private enum ReadState: Sendable {
        case idle
        case reading
        case ended
        case failed(TLSError)
    }

    private var readState: ReadState = .idle
    private var outputShutDown = false
    private(set) var isClosed = false
    let operation: String

    init(operation: String) { self.operation = operation }

    // MARK: Reading

    mutating func beginRead() -> ReadAction {
        if isClosed { return .fail(closedError()) }
        switch readState {
        case .idle:
            readState = .reading
            return .read
        case .reading:
            return .fail(TLSError(kind: .concurrentOperation, operation: "reading from \(operation)", message: "another task is already reading; the inbound sequence has a single consumer"))
        case .ended:
            return .deliverEnd
        case .failed(let error):
            return .fail(error)
        }
    }

    mutating func readReturned(_ result: ReadResult) -> ReadAction {
        switch result {
        case .bytes(let bytes):
            readState = .idle
            return .deliver(bytes)
        case .endOfStream(closeNotify: true):
            readState = .ended
            return .deliverEnd
        case .endOfStream(closeNotify: false):
            let error = TLSError(kind: .truncated, operation: "reading from \(operation)", message: "the peer closed the connection without close_notify; the data may be truncated")
            readState = .failed(error)
            return .fail(error)
        case .wouldBlock:
            return .waitReadable
        case .recoverable:
            return .read
        case .failed(let error):
            readState = .failed(error)
            return .fail(error)
        }
    }

    mutating func readWaitEnded(_ outcome: PollOutcome) -> ReadAction {
        switch outcome {
        case .ready:
            return .read
        case .cancelled:
            readState = .failed(closedError())
            return .closeAndFail(nil)
        case .closed, .timedOut, .shutDown:
            readState = .failed(closedError())
            return .fail(closedError())
        }
    }

    // MARK: Writing

    func beginWrite() -> WriteAction {
        if isClosed { return .fail(closedError()) }
        if outputShutDown {
            return .fail(TLSError(kind: .closed, operation: "writing to \(operation)", message: "the output was shut down"))
        }
        return .write
    }

    mutating func outputWasShutDown() { outputShutDown = true }

    // MARK: Closing

    /// Returns true if this call is the one that closes.
    mutating func close() -> Bool {
        if isClosed { return false }
        isClosed = true
        return true
    }

    private func closedError() -> TLSError {
        TLSError(kind: .closed, operation: operation, message: "the connection is closed")
    }
}
