internal import CNSS
import Logging
import Synchronization

extension TLSConnection {
    /// Asks the client for a certificate now, in the middle of the connection,
    /// and returns the verified chain, leaf first.
    ///
    /// TLS 1.2 renegotiates (a full handshake with a CertificateRequest);
    /// TLS 1.3 sends a post-handshake CertificateRequest, which the client must
    /// have offered. The chain is verified against the configuration's
    /// ``TLSConfiguration/trust``; a chain that fails ends the connection with
    /// the NSS error. Either way ``handshakeEvents`` yields the handshake.
    ///
    /// - Throws: ``TLSError/Kind/peerCertificateMissing`` when the client sent
    ///   none (the connection goes on); ``TLSError/Kind/notOfferedByPeer`` when
    ///   a TLS 1.3 client did not offer post-handshake authentication;
    ///   ``TLSError/Kind/renegotiationRefused`` when a TLS 1.2 client declined;
    ///   the errors of ``rehandshake(flushSession:)``.
    public func requestClientCertificate() async throws -> [TLSCertificate] {
        try await waitForHandshakeCompletion()
        do {
            let chain = try await askForClientCertificate()
            logger.debug("client certificate received", metadata: ["subject": "\(chain.first?.subject ?? "-")"])
            return chain
        } catch {
            if !(error is CancellationError) { logger.debug("client certificate request failed", metadata: ["error": "\(error)"]) }
            throw error
        }
    }

    /// The body of ``requestClientCertificate()``.
    private func askForClientCertificate() async throws -> [TLSCertificate] {
        let operation = "requesting a client certificate from \(remoteAddress)"
        guard isServer else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "only a server asks its peer for a certificate")
        }
        try await handshakeTurn.acquire(orThrowIfClosed: handshakeClosedError)
        defer { handshakeTurn.release() }
        try await callbacks.prepareVerification()
        let accepted = callbacks.peerCertificatesAccepted.load(ordering: .acquiring)
        // Ask, and let a client without a certificate go on: the caller
        // decides what that means. SSL_REQUIRE_NO_ERROR also keeps NSS from
        // resuming a TLS 1.2 session (or ticket) that has no certificate, so
        // session tickets stay on. The configured policy comes back afterwards.
        try socket.withFD(operation) { fd in
            try SSLSocketSetup.setOption(fd, SSL_REQUEST_CERTIFICATE, true, operation)
            try SSLSocketSetup.setOption(fd, SSL_REQUIRE_CERTIFICATE, Int32(SSL_REQUIRE_NO_ERROR), operation)
        }
        defer { try? setClientCertificatePolicy(callbacks.settings.clientCertificatePolicy, operation) }

        let driver = HandshakeDriver(loop: pollLoop)
        let chain: [TLSCertificate]
        if info.protocolVersion >= .tls13 {
            chain = try await driver.authenticateClient(self, operation: operation)
        } else {
            chain = try await driver.renegotiate(self, flushSession: true, refusingTickets: false, operation: operation).info.peerCertificates
        }
        guard callbacks.peerCertificatesAccepted.load(ordering: .acquiring) > accepted, !chain.isEmpty else {
            throw TLSError(kind: .peerCertificateMissing, operation: operation, message: "the client sent no certificate")
        }
        return chain
    }

    private func setClientCertificatePolicy(_ policy: ClientCertificatePolicy, _ operation: String) throws {
        try socket.withFD(operation) { fd in
            try SSLSocketSetup.setClientCertificatePolicy(policy, on: fd, operation)
        }
    }
}
