internal import CNSS
import Logging
import Synchronization

extension TLSConnection {
    /// Runs a new TLS 1.2 handshake on this connection and returns its event,
    /// which ``handshakeEvents`` also yields.
    ///
    /// A server sends HelloRequest, a client a new ClientHello. Other tasks
    /// keep reading and writing meanwhile; application data that arrives
    /// during the handshake is delivered to the next read, in order. A second
    /// call waits until the first one has finished.
    ///
    /// - Parameter flushSession: Start a full handshake rather than resume the
    ///   current session. A full handshake is what asks a client for a new
    ///   certificate. A session whose peer presented a certificate is never
    ///   resumed (so a client always makes a full handshake): NSS 3.87 leaks
    ///   a certificate reference when such a renegotiation resumes.
    /// - Throws: ``TLSError/Kind/invalidConfiguration`` on TLS 1.3 (use
    ///   ``updateKeys(requestPeerUpdate:)`` or ``requestClientCertificate()``)
    ///   or when ``TLSConfiguration/renegotiation`` is ``RenegotiationPolicy/never``;
    ///   ``TLSError/Kind/renegotiationRefused`` when the peer declines, or
    ///   (`SSL_ERROR_RENEGOTIATION_NOT_ALLOWED`) when its handshake did not
    ///   signal secure renegotiation (RFC 5746);
    ///   ``TLSError/Kind/handshakeTimedOut`` after
    ///   ``TLSConfiguration/handshakeTimeout``, which closes the connection;
    ///   `CancellationError`, which closes it too.
    @discardableResult
    public func rehandshake(flushSession: Bool = true) async throws -> HandshakeEvent {
        try await handshakeTurn.acquire()
        defer { handshakeTurn.release() }
        do {
            let event = try await renegotiate(flushSession: flushSession, refusingTickets: flushSession, operation: "rehandshake with \(remoteAddress)")
            logger.debug("rehandshake completed", metadata: ["cipher": "\(event.info.cipherSuite)", "resumed": "\(event.info.resumed)"])
            return event
        } catch {
            if !(error is CancellationError) { logger.debug("rehandshake failed", metadata: ["error": "\(error)"]) }
            throw error
        }
    }

    /// The body of ``rehandshake(flushSession:)``; the caller holds the handshake turn.
    ///
    /// - Parameter refusingTickets: On a server, turn session tickets off
    ///   until the handshake is over: a TLS 1.2 client may offer a ticket in
    ///   its new ClientHello, and NSS resumes a ticket whatever
    ///   `SSL_ReHandshake` was told.
    func renegotiate(flushSession: Bool, refusingTickets: Bool, operation: String) async throws -> HandshakeEvent {
        let settings = callbacks.settings
        let version = info.protocolVersion
        guard version < .tls13 else {
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

        let ticketsWereOn = settings.role == .server && startsFull && refusingTickets ? try setSessionTickets(false, operation) : false
        defer { if ticketsWereOn { _ = try? setSessionTickets(true, operation) } }

        try await acquireWriteTurn()
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
            try await flush(operation)
        } catch {
            releaseWriteTurn()
            throw error
        }
        releaseWriteTurn()

        return try await driveHandshake(deadline: deadline, operation: operation) {
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

    /// Whether the handshake negotiated the renegotiation_info extension
    /// (or the client's SCSV, which NSS counts as the extension).
    private static func peerSignalledSafeRenegotiation(_ fd: UnsafeMutablePointer<PRFileDesc>) -> Bool {
        var negotiated: PRBool = PR_FALSE
        return SSL_HandshakeNegotiatedExtension(fd, ssl_renegotiation_info_xtn, &negotiated) == SECSuccess && negotiated != PR_FALSE
    }

    /// Turns session tickets on or off; returns whether they were on.
    private func setSessionTickets(_ on: Bool, _ operation: String) throws -> Bool {
        try socket.withFD(operation) { fd in
            var current: PRIntn = 0
            guard SSL_OptionGet(fd, SSL_ENABLE_SESSION_TICKETS, &current) == SECSuccess else {
                throw TLSError.fromLastNSSError(operation)
            }
            try SSLSocketSetup.setOption(fd, SSL_ENABLE_SESSION_TICKETS, on, operation)
            return current != 0
        }
    }

    /// Moves a handshake in progress on until `outcome` returns a result.
    ///
    /// While another task reads, that task's reads drive NSS and interrupt
    /// this wait after each one. While none does, this task reads itself and
    /// keeps the application data it receives for the next read (up to
    /// ``handshakeBufferLimit`` bytes; then it waits for the application).
    ///
    /// A timeout or a cancellation closes the connection: a handshake that
    /// stopped halfway leaves nothing to go on with.
    func driveHandshake<Result>(
        deadline: ContinuousClock.Instant,
        operation: String,
        until outcome: () async throws -> Result?
    ) async throws -> Result {
        while true {
            // Taken before looking, so that a read by another task after this
            // point makes the wait below return at once.
            let mark = callbacks.interruptions.interruptionMark()
            if let result = try await outcome() { return result }
            var interest = PollInterest.read
            if !machine.hasActiveReader {
                if machine.bufferedByteCount >= Self.handshakeBufferLimit {
                    interest = .interruptionOnly
                } else {
                    switch machine.pumpReturned(readOnce(maxBytes: 16 * 1024)) {
                    case .progress:
                        // Let a reader that waits for the actor take the data.
                        await Task.yield()
                        continue
                    case .waitReadable:
                        // The read may have finished the handshake without
                        // returning data.
                        if let result = try await outcome() { return result }
                    case .fail(let error):
                        throw error.during(operation)
                    }
                }
            }
            let waited = await callbacks.deferred.wait(on: socket, for: interest, deadline: deadline, since: mark)
            switch waited {
            case .ready, .interrupted:
                continue
            case .timedOut:
                await close()
                throw TLSError(kind: .handshakeTimedOut, operation: operation, message: "the handshake did not complete within \(callbacks.settings.handshakeTimeout); the connection was closed")
            case .cancelled:
                await close()
                throw CancellationError()
            case .closed, .shutDown:
                throw TLSError(kind: .closed, operation: operation, message: "the connection was closed during the handshake")
            }
        }
    }

    /// How much application data a handshake keeps for the application
    /// before it stops reading and waits for a read.
    static var handshakeBufferLimit: Int { 1 << 20 }
}
