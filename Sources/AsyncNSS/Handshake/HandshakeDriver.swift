internal import CNSS
import Logging
import Synchronization

/// Drives every handshake of a connection: the initial one (`SSL_ForceHandshake`,
/// and a wait on the socket's loop whenever it would block), and the later
/// ones (renegotiation, post-handshake authentication, key updates; see
/// `HandshakeDriver+Later.swift`). ``HandshakeStateMachine`` decides each
/// step of both under a deadline.
///
/// Completed handshakes are published to the connection's
/// ``TLSConnection/handshakeEvents``: the initial one and renegotiations by
/// NSS's handshake callback, the others by the driver. The driver returns the
/// event of the handshake it drove.
///
/// The handshake's metrics are recorded here, in the connection's
/// ``ConnectionCallbacks/metrics`` (a listener's or a client's; none for
/// STARTTLS), and nowhere else.
///
/// An actor on the connection's loop: the loop is its executor, as it is the
/// ``TLSConnection``'s, so the two share one executor and call each other
/// with no hop, and each wait of the handshake continues on the thread that
/// polled it. The accept path runs a connection's whole life isolated to its
/// driver (``Acceptor``): the socket's setup, the handshake and, under
/// ``TLSListener/serve(_:)``, the handler.
///
/// A driver keeps no state of its own: one is made for each handshake.
/// (``withTaskBody(on:_:)`` keeps the body of a task until the task takes it.)
actor HandshakeDriver {
    /// The loop of the connection's socket.
    nonisolated let loop: PollLoop

    nonisolated var unownedExecutor: UnownedSerialExecutor {
        loop.asUnownedSerialExecutor()
    }

    typealias TaskBody = @Sendable (isolated HandshakeDriver) async -> Void
    /// The body that ``runTaskBody()`` runs once.
    private var taskBody: TaskBody?

    init(loop: PollLoop) {
        self.loop = loop
    }

    private init(loop: PollLoop, taskBody: @escaping TaskBody) {
        self.loop = loop
        self.taskBody = taskBody
    }

    /// Starts a task that runs `body` isolated to a new driver on `loop`.
    ///
    /// The task's first job runs on the driver: its operation is one of the
    /// driver's methods, so the task starts isolated to it. A closure given
    /// to `Task(executorPreference:)` would start on the loop as a task
    /// executor and enter the driver in a second job.
    static func startTask(on loop: PollLoop, _ body: @escaping TaskBody) -> Task<Void, Never> {
        Task(executorPreference: loop, operation: withTaskBody(on: loop, body).runTaskBody)
    }

    /// A new driver on `loop` whose ``runTaskBody()`` runs `body`: the
    /// operation of a task or child task that starts isolated to the driver
    /// (see ``startTask(on:_:)``).
    static func withTaskBody(on loop: PollLoop, _ body: @escaping TaskBody) -> HandshakeDriver {
        HandshakeDriver(loop: loop, taskBody: body)
    }

    /// Runs the body given to ``withTaskBody(on:_:)``, once.
    func runTaskBody() async {
        guard let body = taskBody else { return }
        taskBody = nil
        await body(self)
    }

    /// Runs the handshake of `socket` and records it in the connection's
    /// metrics. On failure the socket is left open for the caller to close.
    ///
    /// The deadline is `started + timeout`: a listener that read the
    /// ClientHello first (``ServerNamePreselection``) passes the accept time.
    ///
    /// - Parameter peer: The peer, as `remoteAddress` spells it; error
    ///   contexts name it.
    /// - Throws: the NSS error of the handshake, ``TLSError/Kind/handshakeTimedOut``,
    ///   or `CancellationError`.
    func run(_ socket: SocketHandle, callbacks: ConnectionCallbacks, peer: String, timeout: Duration, startedAt started: ContinuousClock.Instant = .now) async throws -> HandshakeEvent {
        try await Handshake(socket: socket, callbacks: callbacks, peer: peer).run(timeout: timeout, startedAt: started)
    }

    /// A client's handshake that sends `earlyData` as TLS 1.3 early data
    /// (0-RTT) if its resumed session allows: once the ClientHello is out,
    /// as much as the session's limit takes. Returns the event and how many
    /// bytes went early; whether the server took them is the event's
    /// ``TLSConnectionInfo/earlyDataAccepted``.
    func run(_ socket: SocketHandle, callbacks: ConnectionCallbacks, peer: String, timeout: Duration, sendingEarly earlyData: [UInt8]) async throws -> (HandshakeEvent, sentEarly: Int) {
        if earlyData.isEmpty {
            return (try await run(socket, callbacks: callbacks, peer: peer, timeout: timeout), 0)
        }
        let started = ContinuousClock.now
        let handshake = Handshake(socket: socket, callbacks: callbacks, peer: peer)
        do {
            guard case .completed(let event, _, _, let sent) = try await handshake.drive(until: started + timeout, timeout: timeout, early: .ignore, sending: earlyData) else {
                throw TLSError(kind: .runtime, operation: "handshake with \(peer)", message: "a client's handshake stopped for early data")
            }
            callbacks.metrics?.handshakeSucceeded(after: .now - started)
            return (event, sent)
        } catch {
            if !(error is CancellationError) { callbacks.metrics?.handshakeFailed(error) }
            throw error
        }
    }

    /// How a server's initial handshake that may accept early data ended.
    enum InitialOutcome: Sendable {
        /// It completed; `data` came with it, after any early data (read
        /// while draining early data, in the moment the handshake completed).
        case completed(HandshakeEvent, earlyData: [[UInt8]], data: [[UInt8]])
        /// It accepted early data and waits for the client's Finished: the
        /// connection can be handed over now (``finishAfterEarlyData(_:callbacks:peer:timeout:startedAt:early:)``).
        case earlyData([[UInt8]], preliminary: HandshakeEvent)
    }

    /// ``run(_:callbacks:peer:timeout:startedAt:)`` for a server that accepts
    /// early data: it returns as soon as early data has arrived.
    func runAcceptingEarlyData(_ socket: SocketHandle, callbacks: ConnectionCallbacks, peer: String, timeout: Duration, startedAt started: ContinuousClock.Instant) async throws -> InitialOutcome {
        let handshake = Handshake(socket: socket, callbacks: callbacks, peer: peer)
        do {
            switch try await handshake.drive(until: started + timeout, timeout: timeout, early: .handOver) {
            case .completed(let event, let early, let data, _):
                callbacks.metrics?.handshakeSucceeded(after: .now - started)
                return .completed(event, earlyData: early, data: data)
            case .earlyData(let chunks):
                return .earlyData(chunks, preliminary: try handshake.preliminaryEvent())
            }
        } catch {
            if !(error is CancellationError) { callbacks.metrics?.handshakeFailed(error) }
            throw error
        }
    }

    /// Drives the rest of a handshake that handed its connection over after
    /// early data, passing later early data and the outcome to `early`. On
    /// failure the socket is closed here: the connection is the
    /// application's already.
    func finishAfterEarlyData(_ socket: SocketHandle, callbacks: ConnectionCallbacks, peer: String, timeout: Duration, startedAt started: ContinuousClock.Instant, early: EarlyHandshake) async {
        let handshake = Handshake(socket: socket, callbacks: callbacks, peer: peer)
        do {
            guard case .completed(_, let chunks, let data, _) = try await handshake.drive(until: started + timeout, timeout: timeout, early: .deliver(early)) else { return }
            for chunk in chunks { early.deliver(chunk) }
            callbacks.metrics?.handshakeSucceeded(after: .now - started)
            if callbacks.logLevel <= .debug { callbacks.logger.debug("handshake completed after early data", metadata: ["early-bytes": "\(early.byteCount)"]) }
            early.finish(nil, then: data)
        } catch {
            let failure = (error as? TLSError) ?? TLSError(kind: .closed, operation: "handshake with \(peer)", message: "\(error)")
            if !(error is CancellationError) {
                callbacks.metrics?.handshakeFailed(error)
                callbacks.logger.info("handshake failed after early data", metadata: ["error": "\(error)"])
            }
            early.finish(failure)
            await socket.close()
        }
    }
}

/// One handshake of ``HandshakeDriver``: a value whose methods run on the
/// caller's executor (the package's nonisolated `async` functions are
/// `nonisolated(nonsending)`).
private struct Handshake {
    let socket: SocketHandle
    let callbacks: ConnectionCallbacks
    let peer: String

    /// The error context, made only when an error needs it.
    private var operation: String { "handshake with \(peer)" }

    func run(timeout: Duration, startedAt started: ContinuousClock.Instant) async throws -> HandshakeEvent {
        do {
            let event = try await drive(until: started + timeout, timeout: timeout)
            callbacks.metrics?.handshakeSucceeded(after: .now - started)
            return event
        } catch {
            if !(error is CancellationError) { callbacks.metrics?.handshakeFailed(error) }
            throw error
        }
    }

    /// What a server does with early data while it drives the handshake.
    enum EarlyData {
        /// Nothing: none is accepted.
        case ignore
        /// Return as soon as some arrived.
        case handOver
        /// Pass it on; the connection was handed over already.
        case deliver(EarlyHandshake)

        var isIgnored: Bool {
            if case .ignore = self { return true }
            return false
        }

        var isDelivering: Bool {
            if case .deliver = self { return true }
            return false
        }
    }

    enum Driven {
        /// `sentEarly`: how many bytes a client sent as early data.
        case completed(HandshakeEvent, earlyData: [[UInt8]], data: [[UInt8]], sentEarly: Int)
        case earlyData([[UInt8]])
    }

    /// The handshake of almost every connection: no early data either way.
    /// Kept apart from ``drive(until:timeout:early:sending:)`` so that its
    /// async frame, which every connection's task holds during its
    /// handshake, stays small (1.2 KiB against 4.3 KiB).
    private func drive(until deadline: ContinuousClock.Instant, timeout: Duration) async throws -> HandshakeEvent {
        var machine = HandshakeStateMachine()
        var action = machine.start()
        while true {
            switch action {
            case .step:
                action = machine.stepped(step())
            case .waitReadable:
                action = machine.waited(await callbacks.deferred.wait(on: socket, for: .read, deadline: deadline))
            case .succeed:
                return try completedEvent()
            case .fail(let failure), .closeAndFail(let failure):
                // The initial handshake's caller closes the socket.
                throw HandshakeDriver.error(for: failure, operation: operation, timeout: timeout)
            case .look, .pump, .yieldThenLook, .waitForInterruption:
                // Actions of later handshakes; the machine never asks the
                // initial handshake for them.
                throw TLSError(kind: .runtime, operation: operation, message: "the handshake's state machine asked for \(action) in an initial handshake")
            }
        }
    }

    /// ``drive(until:timeout:)`` for handshakes with early data: a server
    /// that accepts it (`early`), or a client that sends it (`sending`).
    func drive(until deadline: ContinuousClock.Instant, timeout: Duration, early: EarlyData, sending: [UInt8] = []) async throws -> Driven {
        var machine = HandshakeStateMachine()
        var action = machine.start()
        var earlyData: [[UInt8]] = []
        var data: [[UInt8]] = []
        var sent = 0
        // After the hand-over the server has accepted early data already.
        var readsDriveHandshake = early.isDelivering
        while true {
            switch action {
            case .step:
                // Once the server accepted early data, reads drive the
                // handshake: they hand the early data out before it completes.
                let result = readsDriveHandshake ? .wouldBlock : step()
                if case .wouldBlock = result, sent < sending.count {
                    sent = sendEarlyData(sending, from: sent)
                }
                if case .wouldBlock = result, !early.isIgnored {
                    let drained: Drained
                    do { drained = try drainEarlyData() } catch let error as TLSError {
                        action = machine.stepped(.failed(error))
                        continue
                    }
                    readsDriveHandshake = readsDriveHandshake || drained.accepted
                    data += drained.data
                    switch early {
                    case .ignore:
                        break
                    case .handOver:
                        earlyData += drained.early
                        if !earlyData.isEmpty, drained.data.isEmpty, callbacks.events.latest == nil { return .earlyData(earlyData) }
                    case .deliver(let sink):
                        for chunk in drained.early { sink.deliver(chunk) }
                    }
                    // A read completed the handshake: what it returned
                    // came after the early data.
                    if callbacks.events.latest != nil {
                        action = machine.stepped(.complete)
                        continue
                    }
                }
                action = machine.stepped(result)
            case .waitReadable:
                action = machine.waited(await callbacks.deferred.wait(on: socket, for: .read, deadline: deadline))
            case .succeed:
                return .completed(try completedEvent(), earlyData: earlyData, data: data, sentEarly: sent)
            case .fail(let failure), .closeAndFail(let failure):
                // The initial handshake's caller closes the socket.
                throw HandshakeDriver.error(for: failure, operation: operation, timeout: timeout)
            case .look, .pump, .yieldThenLook, .waitForInterruption:
                // Actions of later handshakes; the machine never asks the
                // initial handshake for them.
                throw TLSError(kind: .runtime, operation: operation, message: "the handshake's state machine asked for \(action) in an initial handshake")
            }
        }
    }

    private func step() -> HandshakeStateMachine.StepResult {
        do {
            return try socket.withFD(operation) { fd in
                callbacks.deferred.deliver(to: fd)
                if SSL_ForceHandshake(fd) == SECSuccess { return .complete }
                let code = PR_GetError()
                if code == NSSErrors.wouldBlock { return .wouldBlock }
                return .failed(callbacks.handshakeError(callbacks.deferred.rejection ?? code, operation))
            }
        } catch let error as TLSError {
            return .failed(error)
        } catch {
            return .failed(TLSError(kind: .closed, operation: operation, message: "\(error)"))
        }
    }

    /// Writes what it can of `data` from `offset` as early data, once the
    /// session allows (NSS returns 0 when the session's limit is reached);
    /// returns how far it got.
    @inline(never)
    private func sendEarlyData(_ data: [UInt8], from offset: Int) -> Int {
        (try? socket.withFD(operation) { fd -> Int in
            var info = SSLPreliminaryChannelInfo()
            guard SSL_GetPreliminaryChannelInfo(fd, &info, PRUintn(MemoryLayout<SSLPreliminaryChannelInfo>.size)) == SECSuccess,
                  info.canSendEarlyData != PR_FALSE else { return offset }
            var sent = offset
            while sent < data.count {
                let count = data.withUnsafeBufferPointer { bytes -> Int32 in
                    guard let base = bytes.baseAddress else { return -1 }
                    return PR_Write(fd, base + sent, Int32(bytes.count - sent))
                }
                guard count > 0 else { break }
                sent += Int(count)
            }
            return sent
        }) ?? offset
    }

    struct Drained {
        /// Whether the server accepted early data.
        var accepted = false
        var early: [[UInt8]] = []
        /// Bytes a read returned as it completed the handshake: not early.
        var data: [[UInt8]] = []
    }

    /// Reads what early data NSS holds, once the server accepted early data
    /// (`PR_Read` hands it out before the handshake completes, and drives
    /// the handshake meanwhile). A read that completes the handshake returns
    /// what came after it: `data`, not early.
    ///
    /// - Throws: the handshake's error, when a read ends in one.
    @inline(never)
    private func drainEarlyData() throws -> Drained {
        try socket.withFD(operation) { fd in
            var drained = Drained()
            guard EarlyDataReader.accepted(fd) else { return drained }
            drained.accepted = true
            while true {
                let completedBefore = callbacks.events.latest != nil
                switch EarlyDataReader.read(fd) {
                case .bytes(let chunk):
                    if completedBefore || callbacks.events.latest != nil {
                        drained.data.append(chunk)
                    } else {
                        drained.early.append(chunk)
                    }
                case .wouldBlock:
                    return drained
                case .ended(let code?):
                    throw callbacks.handshakeError(callbacks.deferred.rejection ?? code, operation)
                case .ended(nil):
                    // The peer closed; after a completed handshake, reads meet it.
                    if callbacks.events.latest != nil { return drained }
                    throw TLSError(kind: .closed, operation: operation, message: "the peer closed the connection during the handshake")
                }
            }
        }
    }

    /// The connection's parameters as they stand while the client's Finished
    /// is awaited after early data.
    func preliminaryEvent() throws -> HandshakeEvent {
        let info = try socket.withFD(operation) { fd in
            ConnectionInfoReader.readPreliminary(fd, requestedServerName: callbacks.requestedServerName.withLock { $0 })
        }
        guard let info else { throw TLSError.fromLastNSSError(operation) }
        return HandshakeEvent(kind: .initial, sequenceNumber: 1, info: info)
    }

    /// The event the handshake callback published; read the info directly if
    /// the callback did not fire (it always should).
    private func completedEvent() throws -> HandshakeEvent {
        if let event = callbacks.events.latest { return event }
        let info = try socket.withFD(operation) { fd in
            ConnectionInfoReader.read(fd, isServer: callbacks.isServer, requestedServerName: callbacks.isServer ? callbacks.requestedServerName.withLock { $0 } : callbacks.serverName, stapledOCSPResponse: callbacks.stapledOCSP.withLock { $0 })
        }
        guard let info else {
            throw TLSError.fromLastNSSError(operation)
        }
        return callbacks.events.publish(info)
    }
}

extension HandshakeDriver {
    /// The error a failed handshake throws. A later handshake that timed
    /// out has closed its connection, and says so.
    static func error(for failure: HandshakeStateMachine.Failure, operation: String, timeout: Duration, closedConnection: Bool = false) -> any Error {
        switch failure {
        case .nss(let error):
            return error.during(operation)
        case .timedOut:
            return TLSError(kind: .handshakeTimedOut, operation: operation, message: "the handshake did not complete within \(timeout)" + (closedConnection ? "; the connection was closed" : ""))
        case .cancelled:
            return CancellationError()
        case .closed:
            return TLSError(kind: .closed, operation: operation, message: "the connection was closed during the handshake")
        case .shutDown:
            return TLSError(kind: .runtime, operation: operation, message: "the NSS runtime is shutting down")
        }
    }
}
