internal import CNSS
import Synchronization

/// The handshakes of an established connection: TLS 1.2 renegotiation,
/// TLS 1.3 post-handshake authentication and key updates.
///
/// The connection's public methods take their turn and call these; the
/// driver shares the connection's executor, so each call between the two
/// is no hop.
extension HandshakeDriver {
    /// Starts a TLS 1.2 renegotiation (HelloRequest or a new ClientHello) and
    /// drives it to its event. The caller holds the connection's handshake turn.
    ///
    /// - Parameter refusingTickets: On a server, turn session tickets off
    ///   until the handshake is over: a TLS 1.2 client may offer a ticket in
    ///   its new ClientHello, and NSS resumes a ticket whatever
    ///   `SSL_ReHandshake` was told.
    func renegotiate(_ connection: TLSConnection, flushSession: Bool, refusingTickets: Bool, operation: String) async throws -> HandshakeEvent {
        let callbacks = connection.callbacks
        let settings = callbacks.settings
        let info = connection.info
        guard info.protocolVersion < .tls13 else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "TLS 1.3 has no renegotiation; use updateKeys(requestPeerUpdate:) for new keys or requestClientCertificate() for a client certificate")
        }
        guard settings.renegotiation.allowsLocal else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "the configuration's renegotiation policy is \(settings.renegotiation)")
        }
        // NSS 3.87 overwrites its reference to the peer's certificate without
        // releasing the old one when a renegotiation resumes a session
        // (ssl3_HandleServerHello, ssl3_HandleClientHello): one leaked
        // certificate per renegotiation, and SEC_ERROR_BUSY at shutdown.
        let startsFull = flushSession || !info.peerCertificates.isEmpty
        let deadline = ContinuousClock.now + settings.handshakeTimeout
        let before = callbacks.events.handshakeCount
        callbacks.renegotiationRefused.store(false, ordering: .releasing)

        let socket = connection.socket
        let ticketsWereOn = settings.role == .server && startsFull && refusingTickets ? try Self.setSessionTickets(false, on: socket, operation) : false
        defer { if ticketsWereOn { _ = try? Self.setSessionTickets(true, on: socket, operation) } }

        try await connection.acquireWriteTurn()
        do {
            try socket.withFD(operation) { fd in
                // NSS 3.87 sends HelloRequest or a new ClientHello to a peer
                // that never signalled RFC 5746, whatever the renegotiation
                // mode; only the renegotiation_info extension makes it safe.
                guard Self.peerSignalledSafeRenegotiation(fd) else {
                    var error = TLSError.fromNSSCode(NSSErrors.renegotiationNotAllowed, operation)
                    error.kind = .renegotiationRefused
                    error.message += " The peer did not signal secure renegotiation (RFC 5746) in its handshake, and AsyncNSS never renegotiates insecurely."
                    throw error
                }
                // NSS starts a renegotiation only while renegotiation is
                // enabled; the peer's own stay refused unless the policy says
                // otherwise. Once HelloRequest or ClientHello is out, the
                // handshake in progress goes on whatever the option says.
                try SSLSocketSetup.setRenegotiation(acceptingPeer: true, on: fd, operation)
                let started = SSL_ReHandshake(fd, startsFull ? PR_TRUE : PR_FALSE) == SECSuccess
                let code = PR_GetError()
                try SSLSocketSetup.setRenegotiation(acceptingPeer: settings.renegotiation.acceptsPeer(as: settings.role), on: fd, operation)
                guard started else { throw TLSError.fromNSSCode(code, operation) }
            }
            try await connection.flush(operation)
        } catch {
            connection.writeTurn.release()
            throw error
        }
        connection.writeTurn.release()

        return try await driveLater(connection, deadline: deadline, operation: operation) { _ in
            if let event = callbacks.events.firstEvent(after: before, kind: .renegotiation) {
                callbacks.metrics?.rehandshake(.renegotiation)
                return event
            }
            if callbacks.renegotiationRefused.load(ordering: .acquiring) {
                throw TLSError(kind: .renegotiationRefused, operation: operation, message: "the peer answered with a no_renegotiation alert")
            }
            return nil
        }
    }

    /// TLS 1.3 post-handshake authentication: sends a CertificateRequest,
    /// drives the connection until the client's answer is processed, and
    /// publishes the handshake. Returns the client's chain, leaf first (empty
    /// when it sent none). The caller holds the connection's handshake turn
    /// and has asked NSS to request a certificate.
    func authenticateClient(_ connection: TLSConnection, operation: String) async throws -> [TLSCertificate] {
        let callbacks = connection.callbacks
        let socket = connection.socket
        let deadline = ContinuousClock.now + callbacks.settings.handshakeTimeout
        try await connection.acquireWriteTurn()
        do {
            try socket.withFD(operation) { fd in
                guard cnss_send_certificate_request(fd) == SECSuccess else {
                    let code = PR_GetError()
                    if code == NSSErrors.missingPostHandshakeAuthExtension {
                        throw TLSError(kind: .notOfferedByPeer, operation: operation, nssCode: code, nssName: NSSErrorText.name(code), message: "the client did not offer post-handshake authentication, so it cannot be asked for a certificate after the handshake")
                    }
                    throw callbacks.handshakeError(code, operation)
                }
            }
            try await connection.flush(operation)
        } catch {
            connection.writeTurn.release()
            throw error
        }
        connection.writeTurn.release()

        try await driveLater(connection, deadline: deadline, operation: operation) { connection in
            try await Self.postHandshakeAuthenticationEnded(connection, operation) ? () : nil
        }
        let info = try socket.withFD(operation) { fd in
            ConnectionInfoReader.read(fd, isServer: true, requestedServerName: callbacks.requestedServerName.withLock { $0 })
        }
        guard let info else { throw TLSError.fromLastNSSError(operation) }
        callbacks.events.publish(info, kind: .postHandshakeAuthentication)
        callbacks.metrics?.rehandshake(.postHandshakeAuthentication)
        return info.peerCertificates
    }

    /// Sends a TLS 1.3 KeyUpdate once the writes before it are out, and
    /// publishes it. Returns the event.
    func updateKeys(_ connection: TLSConnection, requestPeerUpdate: Bool, operation: String) async throws -> HandshakeEvent {
        let callbacks = connection.callbacks
        let current = connection.info
        guard current.protocolVersion >= .tls13 else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "key updates exist in TLS 1.3 only; this connection uses \(current.protocolVersion)")
        }
        try await connection.acquireWriteTurn()
        defer { connection.writeTurn.release() }
        try connection.socket.withFD(operation) { fd in
            guard cnss_key_update(fd, requestPeerUpdate ? PR_TRUE : PR_FALSE) == SECSuccess else {
                let code = PR_GetError()
                if code == NSSErrors.wouldBlock {
                    throw TLSError(kind: .concurrentOperation, operation: operation, nssCode: code, nssName: NSSErrorText.name(code), message: "a post-handshake certificate request is still outstanding")
                }
                throw TLSError.fromNSSCode(code, operation)
            }
        }
        try await connection.flush(operation)
        callbacks.metrics?.rehandshake(.keyUpdate)
        return callbacks.events.publish(current, kind: .keyUpdate)
    }

    /// Moves a later handshake on until `outcome` returns a result, as
    /// ``HandshakeStateMachine`` decides for its `later` kind.
    ///
    /// While a task of the application reads, its reads drive NSS and
    /// interrupt this wait after each one. While none does, the driver pumps:
    /// the connection reads once and keeps the application data for the next
    /// read (up to ``TLSConnection/handshakeBufferLimit`` bytes; then it
    /// waits for the application).
    private func driveLater<Result: Sendable>(
        _ connection: TLSConnection,
        deadline: ContinuousClock.Instant,
        operation: String,
        until outcome: @Sendable (isolated TLSConnection) async throws -> Result?
    ) async throws -> Result {
        let callbacks = connection.callbacks
        let socket = connection.socket
        var machine = HandshakeStateMachine(kind: .later)
        var action = machine.start()
        var mark = callbacks.interruptions.interruptionMark()
        while true {
            switch action {
            case .look:
                // Taken before looking, so that a read by another task after
                // this point makes the next wait return at once.
                mark = callbacks.interruptions.interruptionMark()
                if let result = try await outcome(connection) { return result }
                action = machine.looked(found: false)
            case .pump:
                action = machine.pumped(await connection.pumpForHandshake())
            case .yieldThenLook:
                await Task.yield()
                action = machine.yielded()
            case .waitReadable:
                action = machine.waited(await callbacks.deferred.wait(on: socket, for: .read, deadline: deadline, since: mark))
            case .waitForInterruption:
                action = machine.waited(await callbacks.deferred.wait(on: socket, for: .interruptionOnly, deadline: deadline, since: mark))
            case .step, .succeed:
                // A later handshake succeeds only through a look that found
                // its result, and never steps; the machine says neither.
                throw TLSError(kind: .runtime, operation: operation, message: "the handshake's state machine asked for \(action) in a later handshake")
            case .fail(let failure):
                throw Self.error(for: failure, operation: operation, timeout: callbacks.settings.handshakeTimeout)
            case .closeAndFail(let failure):
                await connection.close()
                throw Self.error(for: failure, operation: operation, timeout: callbacks.settings.handshakeTimeout, closedConnection: true)
            }
        }
    }

    /// Whether the client's answer to the CertificateRequest has been
    /// processed, Finished included.
    ///
    /// NSS has no query for this, but `SSL_KeyUpdate` tells without side
    /// effects while the answer is outstanding (`PR_WOULD_BLOCK_ERROR`) or
    /// half processed (`SEC_ERROR_INVALID_ARGS`). Once it is done the call
    /// succeeds: the server's sending keys are renewed right after the
    /// authentication, which the peer handles like any KeyUpdate.
    private static func postHandshakeAuthenticationEnded(_ connection: isolated TLSConnection, _ operation: String) async throws -> Bool {
        try await connection.acquireWriteTurn()
        defer { connection.writeTurn.release() }
        let callbacks = connection.callbacks
        let ended = try connection.socket.withFD(operation) { fd -> Bool in
            if cnss_key_update(fd, PR_FALSE) == SECSuccess { return true }
            let code = PR_GetError()
            if code == NSSErrors.wouldBlock || code == NSSErrors.invalidArguments { return false }
            throw callbacks.handshakeError(code, operation)
        }
        if ended { try await connection.flush(operation) }
        return ended
    }

    /// Whether the handshake negotiated the renegotiation_info extension
    /// (or the client's SCSV, which NSS counts as the extension).
    private static func peerSignalledSafeRenegotiation(_ fd: UnsafeMutablePointer<PRFileDesc>) -> Bool {
        var negotiated: PRBool = PR_FALSE
        return SSL_HandshakeNegotiatedExtension(fd, ssl_renegotiation_info_xtn, &negotiated) == SECSuccess && negotiated != PR_FALSE
    }

    /// Turns session tickets on or off; returns whether they were on.
    private static func setSessionTickets(_ on: Bool, on socket: SocketHandle, _ operation: String) throws -> Bool {
        try socket.withFD(operation) { fd in
            var current: PRIntn = 0
            guard SSL_OptionGet(fd, SSL_ENABLE_SESSION_TICKETS, &current) == SECSuccess else {
                throw TLSError.fromLastNSSError(operation)
            }
            try SSLSocketSetup.setOption(fd, SSL_ENABLE_SESSION_TICKETS, on, operation)
            return current != 0
        }
    }
}
