internal import CNSS
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
actor HandshakeDriver {
    /// The loop of the connection's socket.
    nonisolated let loop: PollLoop

    nonisolated var unownedExecutor: UnownedSerialExecutor {
        loop.asUnownedSerialExecutor()
    }

    init(loop: PollLoop) {
        self.loop = loop
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
