/// The life of a connection's read and write sides, as a state machine with no I/O.
///
/// ``TLSConnection`` reports what NSS and the poll thread returned; the machine
/// answers with what to do. It decides how the inbound stream ends: a
/// close_notify ends it cleanly, a bare TCP close is reported as truncation.
///
/// A rehandshake that drives NSS while no task reads ("pumps") hands the
/// application data it receives to the machine, which delivers it to the next
/// read before anything else, in order.
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

    /// What a rehandshake does after one of its own reads.
    enum PumpAction: Sendable, Equatable {
        /// NSS made progress (data was buffered, or handshake records were
        /// consumed): look at the handshake again.
        case progress
        /// Nothing to read: wait for the socket.
        case waitReadable
        /// The connection ended or failed; the handshake cannot complete.
        case fail(TLSError)
    }

    enum WriteAction: Sendable {
        case write
        case fail(TLSError)
    }

    private enum ReadState: Sendable {
        case idle
        case reading
        case ended
        /// Indirect: inline, the error would make every connection 64 bytes
        /// larger for a state that only a failed connection reaches.
        indirect case failed(TLSError)
    }

    private var readState: ReadState = .idle
    /// Application data a rehandshake received while no task was reading.
    private var buffered: [[UInt8]] = []
    private(set) var bufferedByteCount = 0
    private var outputShutDown = false
    private(set) var isClosed = false
    /// The peer's address, which errors name. Stored as given (it shares
    /// the connection's `remoteAddress`), and the longer texts are made only
    /// when an error needs them: a connection keeps no string of its own.
    let peer: String
    /// What the connection-wide errors say they were about.
    var operation: String { "connection with \(peer)" }

    init(peer: String) { self.peer = peer }

    // MARK: Reading

    /// Whether a task is inside a read (reading or waiting to read); NSS is
    /// then driven by that task, and a rehandshake must not read itself.
    var hasActiveReader: Bool {
        if case .reading = readState { return true }
        return false
    }

    mutating func beginRead(maxBytes: Int = .max) -> ReadAction {
        if isClosed { return .fail(closedError()) }
        if !hasActiveReader, let chunk = takeBuffered(maxBytes: max(1, maxBytes)) {
            return .deliver(chunk)
        }
        switch readState {
        case .idle:
            readState = .reading
            return .read
        case .reading:
            return .fail(TLSError(kind: .concurrentOperation, operation: "reading from \(peer)", message: "another task is already reading; the inbound sequence has a single consumer"))
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
            let error = TLSError(kind: .truncated, operation: "reading from \(peer)", message: "the peer closed the connection without close_notify; the data may be truncated")
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

    /// Puts chunks that arrived before any read (early data, or what came
    /// with a handshake's completion) after those buffered already.
    mutating func prefill(_ chunks: [[UInt8]]) {
        for chunk in chunks where !chunk.isEmpty {
            buffered.append(chunk)
            bufferedByteCount += chunk.count
        }
    }

    /// Up to `maxBytes` of the oldest buffered chunk.
    private mutating func takeBuffered(maxBytes: Int) -> [UInt8]? {
        guard let first = buffered.first else { return nil }
        if first.count <= maxBytes {
            buffered.removeFirst()
            bufferedByteCount -= first.count
            return first
        }
        buffered[0] = Array(first[maxBytes...])
        bufferedByteCount -= maxBytes
        return Array(first[..<maxBytes])
    }

    // MARK: Rehandshakes

    /// The result of a read that a rehandshake made while no task was reading.
    mutating func pumpReturned(_ result: ReadResult) -> PumpAction {
        precondition(!hasActiveReader, "a rehandshake reads only while no task does")
        switch result {
        case .bytes(let bytes):
            buffered.append(bytes)
            bufferedByteCount += bytes.count
            return .progress
        case .recoverable:
            return .progress
        case .wouldBlock:
            return .waitReadable
        case .endOfStream(let closeNotify):
            // The next read sees the end, after the buffered data.
            _ = readReturned(.endOfStream(closeNotify: closeNotify))
            guard closeNotify else {
                return .fail(TLSError(kind: .closed, operation: operation, message: "the peer closed the connection during the handshake"))
            }
            // A half-close: this side may still write.
            return .fail(TLSError(kind: .renegotiationRefused, operation: operation, message: "the peer has closed its sending side (close_notify), so it can no longer take part in a handshake; this side may still write"))
        case .failed(let error):
            readState = .failed(error)
            return .fail(error)
        }
    }

    mutating func readWaitEnded(_ outcome: PollOutcome) -> ReadAction {
        switch outcome {
        case .ready, .interrupted:
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
            return .fail(TLSError(kind: .closed, operation: "writing to \(peer)", message: "the output was shut down"))
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
