internal import CNSS
public import Logging
import Synchronization

/// A TLS connection over a nonblocking NSPR socket.
///
/// Read with ``inbound`` (or ``receive(maxBytes:)``), write with ``write(_:)-([UInt8])``,
/// and end with ``close()``, which sends close_notify. Reads and writes may run
/// in different tasks at the same time.
///
/// - Important: Cancelling a task that waits in a read or a write closes the
///   connection: a TLS stream cannot resume after a write stopped halfway.
public actor TLSConnection {
    /// The peer's address, `127.0.0.1:54321` or `[::1]:54321`.
    public nonisolated let remoteAddress: String
    /// Whether this side is the server.
    public nonisolated let isServer: Bool
    /// A logger for this connection: the configuration's (or the listener's)
    /// with metadata `connection` (a number unique in the process), `peer`,
    /// and what the initial handshake negotiated: `version`, `cipher`, `sni`,
    /// `alpn`, `resumed`. Log with it to tie application lines to the connection.
    public nonisolated var logger: Logger {
        // Made on first use: most connections never log at a level that
        // passes, and the metadata costs a dictionary and five strings.
        negotiatedLogger.withLock { logger in
            if let logger { return logger }
            let made = ConnectionLogging.negotiated(callbacks.logger, initialEvent.event.info)
            logger = made
            return made
        }
    }
    private nonisolated let negotiatedLogger = Mutex<Logger?>(nil)
    /// Error contexts, made only when an error needs one.
    private nonisolated var readOperation: String { "reading from \(remoteAddress)" }
    private nonisolated var writeOperation: String { "writing to \(remoteAddress)" }

    let socket: SocketHandle
    let callbacks: ConnectionCallbacks

    /// The connection runs on the poll loop of its socket: its reads,
    /// writes and handshakes run on the thread that polls the socket.
    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        socket.pollLoop.asUnownedSerialExecutor()
    }

    /// The loop of this connection, as a task executor: a task that prefers
    /// it (`Task(executorPreference:)`, `group.addTask(executorPreference:)`)
    /// runs beside the connection, and its reads and writes need no thread
    /// crossing. Do not block in such a task: it would stall every
    /// connection of the loop.
    public nonisolated var executor: any TaskExecutor { socket.pollLoop }

    /// The loop of this connection's socket.
    nonisolated var pollLoop: PollLoop { socket.pollLoop }
    /// The initial handshake's event: the hub's box when the handshake
    /// completed (shared, not copied); the preliminary one of a connection
    /// handed over at its early data.
    private let initialEvent: HandshakeEventBox
    var machine: ConnectionStateMachine
    /// Writes take turns: a write that waits for the network must not be
    /// interleaved with another. The turn passes directly to the next waiter.
    let writeTurn = AsyncTurn()
    /// Rehandshakes and certificate requests take turns: NSS runs one
    /// handshake at a time. Made on first use, as most connections never
    /// rehandshake; one made after ``close()`` is closed.
    var handshakeTurn: AsyncTurn {
        if let handshakeTurnIfMade { return handshakeTurnIfMade }
        let turn = AsyncTurn()
        if machine.isClosed { turn.close(handshakeClosedError) }
        handshakeTurnIfMade = turn
        return turn
    }
    private var handshakeTurnIfMade: AsyncTurn?
    private nonisolated var writeClosedError: TLSError {
        TLSError(kind: .closed, operation: writeOperation, message: "the connection was closed")
    }
    var handshakeClosedError: TLSError {
        TLSError(kind: .closed, operation: "handshake with \(remoteAddress)", message: "the connection was closed")
    }
    /// Closes the connection after ``TLSConfiguration/idleTimeout`` without
    /// reads or writes; none without an idle timeout.
    private let idleWatch: BackgroundTask?
    private var lastActivity = ContinuousClock.now

    /// The PROXY protocol header that came before this connection's TLS,
    /// on a listener that requires one (``TLSConfiguration/proxyProtocol``);
    /// nil otherwise. ``remoteAddress`` is then the header's client address,
    /// when it has one.
    public nonisolated var proxyHeader: ProxyProtocolHeader? { proxied?.header }
    /// Boxed, so that a connection without a header pays one word for it.
    private nonisolated let proxied: ProxiedBy?
    /// On a server that accepted early data: the early bytes and the rest of
    /// the handshake, which completes after the connection was handed over.
    nonisolated let early: EarlyHandshake?
    /// Whether reads took every early chunk and the handshake's outcome.
    private var earlyTaken = false
    private var earlyReaderActive = false

    init(socket: SocketHandle, callbacks: ConnectionCallbacks, remoteAddress: String, initialEvent: HandshakeEvent, proxyHeader: ProxyProtocolHeader? = nil, early: EarlyHandshake? = nil) {
        self.proxied = proxyHeader.map(ProxiedBy.init)
        self.early = early
        self.socket = socket
        self.callbacks = callbacks
        self.remoteAddress = remoteAddress
        self.isServer = callbacks.isServer
        if let published = callbacks.events.latestBox, published.event == initialEvent {
            self.initialEvent = published
        } else {
            self.initialEvent = HandshakeEventBox(initialEvent)
        }
        self.machine = ConnectionStateMachine(peer: remoteAddress)
        if let limit = callbacks.settings.idleTimeout {
            let watch = BackgroundTask()
            idleWatch = watch
            // The watch holds the connection only while it looks at it, never
            // while it sleeps, so that dropping the connection frees it.
            watch.start { [weak self] in
                while let due = await self?.idleDeadline(limit) {
                    do { try await Task.sleep(until: due) } catch { return }
                }
            }
        } else {
            idleWatch = nil
        }
    }

    deinit {
        // A connection dropped without close() still gives back its
        // listener's slot; the socket closes itself.
        callbacks.connectionEnded()
    }

    /// What the most recent handshake negotiated.
    public nonisolated var info: TLSConnectionInfo {
        (callbacks.events.latest ?? initialEvent.event).info
    }

    /// Received bytes in chunks, ending when the peer closes with close_notify.
    ///
    /// A peer that closes TCP without close_notify makes the sequence throw
    /// ``TLSError/Kind/truncated``. One consumer at a time.
    public nonisolated var inbound: TLSInboundStream { TLSInboundStream(connection: self) }

    /// Every completed handshake of this connection: the initial one first,
    /// then any renegotiation. Each call returns a new sequence that replays
    /// the events so far; it ends when the connection closes.
    public nonisolated var handshakeEvents: AsyncStream<HandshakeEvent> { callbacks.events.subscribe() }

    /// Receives the next chunk of at most `maxBytes` bytes, or `nil` once the
    /// peer has closed with close_notify.
    ///
    /// After early data (``earlyDataByteCount``), the first chunks are the
    /// early bytes, each returned apart from later bytes, before the
    /// handshake has completed.
    public func receive(maxBytes: Int = 16 * 1024) async throws -> [UInt8]? {
        if let early, !earlyTaken, machine.bufferedByteCount == 0 {
            try await takeEarly(early)
        }
        // A rehandshake waits while this task drives NSS; let it look again
        // after each read and once this read ends.
        defer { callbacks.interruptions.interruptWaits() }
        var step = readSteps(from: machine.beginRead(maxBytes: maxBytes), maxBytes: maxBytes)
        while true {
            switch step {
            case .waitReadable:
                let outcome = await callbacks.deferred.wait(on: socket, for: .read)
                step = readSteps(from: machine.readWaitEnded(outcome), maxBytes: maxBytes)
            case .done(let bytes):
                return bytes
            case .failed(let error):
                throw error
            case .closeAndFail(let error):
                await close()
                throw error ?? CancellationError()
            }
        }
    }

    /// Moves the next early chunk, or what came with the handshake's
    /// completion, into the read buffer; throws the handshake's error.
    @inline(never)
    private func takeEarly(_ early: EarlyHandshake) async throws {
        guard !earlyReaderActive else {
            throw TLSError(kind: .concurrentOperation, operation: readOperation, message: "another task is already reading; the inbound sequence has a single consumer")
        }
        earlyReaderActive = true
        defer { earlyReaderActive = false }
        switch try await early.next() {
        case .data(let bytes):
            machine.prefill([bytes])
        case .completed(let data):
            earlyTaken = true
            machine.prefill(data)
        case .failed(let error):
            throw error
        }
    }

    /// How many bytes at the start of the stream came as TLS 1.3 early data
    /// (0-RTT), which an attacker may have replayed; 0 when none did. It
    /// grows while early data arrives and is final once the handshake has
    /// completed (``waitForHandshakeCompletion()``).
    public nonisolated var earlyDataByteCount: Int { early?.byteCount ?? 0 }

    /// Returns once the initial handshake has completed: at once, unless the
    /// connection was handed over after early data. Bytes received before
    /// this returns cannot have been replayed once it returned.
    ///
    /// - Throws: the handshake's error, which closed the connection.
    public func waitForHandshakeCompletion() async throws {
        try await early?.waitForCompletion()
    }

    /// Where a read goes after its steps that need no wait.
    private enum ReadStep {
        case waitReadable
        /// The chunk, or nil at the end of the stream.
        case done([UInt8]?)
        case failed(TLSError)
        case closeAndFail(TLSError?)
    }

    /// Runs a read's steps that need no wait: `PR_Read`s and the state
    /// machine's answers, until the read must wait or has ended.
    ///
    /// Never inlined, so that its values stay out of the async frame of
    /// ``receive(maxBytes:)``, which an idle connection's reader keeps.
    @inline(never)
    private func readSteps(from first: ConnectionStateMachine.ReadAction, maxBytes: Int) -> ReadStep {
        var action = first
        while true {
            switch action {
            case .read:
                action = machine.readReturned(readOnce(maxBytes: max(1, maxBytes)))
                callbacks.interruptions.interruptWaits()
            case .waitReadable:
                return .waitReadable
            case .deliver(let bytes):
                noteActivity()
                callbacks.metrics?.received(bytes.count)
                return .done(bytes)
            case .deliverEnd:
                return .done(nil)
            case .fail(let error):
                return .failed(error)
            case .closeAndFail(let error):
                return .closeAndFail(error)
            }
        }
    }

    /// Writes every byte, waiting while the peer or the network is slow.
    /// Returns once NSS has taken all of them.
    public func write(_ bytes: some Sequence<UInt8>) async throws {
        try await write(Array(bytes))
    }

    /// Writes every byte, waiting while the peer or the network is slow.
    /// Returns once NSS has taken all of them.
    public func write(_ bytes: [UInt8]) async throws {
        // A server cannot write before the client's Finished (NSS sends no
        // 0.5-RTT data): after early data, writes wait for the handshake.
        if let early, !early.isFinished { try await early.waitForCompletion() }
        try await acquireWriteTurn()
        defer { releaseWriteTurn() }
        if case .fail(let error) = machine.beginWrite() { throw error }
        var offset = 0
        while offset < bytes.count {
            let written = try socket.writeSome(bytes, from: offset, operation: writeOperation)
            if written > 0 {
                offset += written
                continue
            }
            try await waitUntilWritable(writeOperation)
        }
        noteActivity()
        callbacks.metrics?.sent(bytes.count)
    }

    private func noteActivity() {
        if callbacks.settings.idleTimeout != nil { lastActivity = .now }
    }

    /// When the connection will have been idle for `limit`; nil once it is
    /// closed. A connection idle for `limit` already is closed here.
    private func idleDeadline(_ limit: Duration) async -> ContinuousClock.Instant? {
        if machine.isClosed { return nil }
        let due = lastActivity + limit
        guard ContinuousClock.now >= due else { return due }
        logger.debug("closing the connection: idle for \(limit)")
        await close()
        return nil
    }

    /// Waits until the socket may take more. A cancelled wait closes the
    /// connection: a write cannot stop halfway and resume.
    func waitUntilWritable(_ operation: @autoclosure () -> String) async throws {
        do {
            try await socket.waitUntilReady(for: .write, operation: operation(), closedMessage: "the connection was closed while writing")
        } catch let error as CancellationError {
            await close()
            throw error
        }
    }

    /// Sends close_notify and shuts down TCP's sending side, keeping the
    /// receiving side open (a TLS half-close).
    ///
    /// What TLS itself would still write afterwards (the answer to a TLS 1.3
    /// KeyUpdate, the refusal of a renegotiation) is dropped, as the peer
    /// would ignore it after close_notify: it cannot fail the reads that
    /// bring the data the peer still sends.
    public func shutdownOutput() async throws {
        if machine.isClosed { return }
        try await acquireWriteTurn()
        defer { releaseWriteTurn() }
        if machine.isClosed { return }
        machine.outputWasShutDown()
        let operation = "shutting down output to \(remoteAddress)"
        try socket.withFD(operation) { fd in
            // A side that has sent close_notify cannot take part in a
            // renegotiation: NSS refuses the peer's HelloRequest instead.
            try SSLSocketSetup.setRenegotiation(acceptingPeer: false, on: fd, operation)
            guard PR_Shutdown(fd, PR_SHUTDOWN_SEND) == PR_SUCCESS else {
                let code = PR_GetError()
                // The peer closed first: there is nothing left to shut down.
                if code == PRErrorCode(PR_NOT_CONNECTED_ERROR) { return }
                throw TLSError.fromNSSCode(code, operation)
            }
        }
    }

    /// Sends close_notify and closes the socket. Pending reads and writes end
    /// with ``TLSError/Kind/closed``. Idempotent.
    public func close() async {
        guard machine.close() else { return }
        idleWatch?.cancel()
        writeTurn.close(writeClosedError)
        handshakeTurnIfMade?.close(handshakeClosedError)
        await socket.close()
        callbacks.connectionEnded()
    }

    /// Runs `body` with the connection and closes it afterwards, also when `body` throws.
    public nonisolated(nonsending) func executeThenClose<Result>(
        _ body: (TLSConnection) async throws -> Result
    ) async throws -> Result {
        do {
            let result = try await body(self)
            await close()
            return result
        } catch {
            await close()
            throw error
        }
    }

    func readOnce(maxBytes: Int) -> ConnectionStateMachine.ReadResult {
        do {
            let step = try socket.withFD(readOperation) { fd in
                callbacks.deferred.deliver(to: fd)
                return SocketHandle.read(fd, maxBytes: min(maxBytes, SocketHandle.maximumTLSReadSize))
            }
            switch step {
            case .bytes(let bytes):
                return .bytes(bytes)
            case .endOfStream:
                return .endOfStream(closeNotify: callbacks.closeNotifyReceived.load(ordering: .acquiring))
            case .failed(let code) where code == NSSErrors.wouldBlock:
                return .wouldBlock
            case .failed(let code) where code == NSSErrors.renegotiationNotAllowed:
                return .recoverable
            case .failed(let code):
                return .failed(callbacks.handshakeError(code, readOperation))
            }
        } catch let error as TLSError {
            return .failed(error)
        } catch {
            return .failed(TLSError(kind: .closed, operation: readOperation, message: "\(error)"))
        }
    }

    func acquireWriteTurn() async throws {
        try await writeTurn.acquire(orThrowIfClosed: writeClosedError)
    }

    /// Hands the turn to the next waiting write, or frees it.
    func releaseWriteTurn() {
        writeTurn.release()
    }
}

/// The bytes a ``TLSConnection`` receives, as an `AsyncSequence` of chunks.
public struct TLSInboundStream: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let connection: TLSConnection

    public struct AsyncIterator: AsyncIteratorProtocol {
        let connection: TLSConnection
        public mutating func next() async throws -> [UInt8]? {
            try await connection.receive()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(connection: connection) }
}

/// The PROXY protocol header of a ``TLSConnection``.
private final class ProxiedBy: Sendable {
    let header: ProxyProtocolHeader
    init(_ header: ProxyProtocolHeader) { self.header = header }
}
