import Logging

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
        try await waitForHandshakeCompletion()
        try await handshakeTurn.acquire(orThrowIfClosed: handshakeClosedError)
        defer { handshakeTurn.release() }
        do {
            let event = try await HandshakeDriver(loop: pollLoop).renegotiate(self, flushSession: flushSession, refusingTickets: flushSession, operation: "rehandshake with \(remoteAddress)")
            logger.debug("rehandshake completed", metadata: ["cipher": "\(event.info.cipherSuite)", "resumed": "\(event.info.resumed)"])
            return event
        } catch {
            if !(error is CancellationError) { logger.debug("rehandshake failed", metadata: ["error": "\(error)"]) }
            throw error
        }
    }

    /// Reads once for a later handshake while no task of the application
    /// reads, keeping the application data for the next read.
    ///
    /// ``HandshakeDriver`` calls this when it must move NSS on itself.
    func pumpForHandshake() -> HandshakeStateMachine.PumpResult {
        if machine.hasActiveReader { return .readerActive }
        if machine.bufferedByteCount >= Self.handshakeBufferLimit { return .bufferFull }
        switch machine.pumpReturned(readOnce(maxBytes: 16 * 1024)) {
        case .progress: return .progress
        case .waitReadable: return .nothingToRead
        case .fail(let error): return .failed(error)
        }
    }

    /// How much application data a handshake keeps for the application
    /// before it stops reading and waits for a read.
    static var handshakeBufferLimit: Int { 1 << 20 }
}
