internal import CNSS

extension TLSConnection {
    /// Removes this connection's session from the session cache, so that no
    /// later connection resumes it. The connection itself goes on.
    public func invalidateSession() throws {
        let operation = "invalidating the session with \(remoteAddress)"
        try socket.withFD(operation) { fd in
            guard SSL_InvalidateSession(fd) == SECSuccess else { throw TLSError.fromLastNSSError(operation) }
        }
    }

    /// Sends a TLS 1.3 KeyUpdate: this side's sending keys change. With
    /// `requestPeerUpdate`, the peer is asked to update its keys too.
    ///
    /// Waits its turn with other writes and returns once the message has left
    /// NSS. The update is published on ``handshakeEvents`` as a
    /// ``HandshakeEvent/Kind/keyUpdate`` event, which is also returned.
    ///
    /// - Throws: ``TLSError/Kind/invalidConfiguration`` on TLS 1.2, which has
    ///   no key updates.
    @discardableResult
    public func updateKeys(requestPeerUpdate: Bool = false) async throws -> HandshakeEvent {
        try await waitForHandshakeCompletion()
        return try await HandshakeDriver(loop: pollLoop).updateKeys(self, requestPeerUpdate: requestPeerUpdate, operation: "updating keys with \(remoteAddress)")
    }

    /// Waits until NSS has handed every buffered record to the kernel.
    func flush(_ operation: String) async throws {
        var nothing: UInt8 = 0
        while true {
            let flushed = try socket.withFD(operation) { fd -> Bool in
                // A zero-length write sends what NSS buffered and fails with
                // PR_WOULD_BLOCK_ERROR while some is left.
                if PR_Write(fd, &nothing, 0) >= 0 { return true }
                let code = PR_GetError()
                if code == NSSErrors.wouldBlock { return false }
                throw TLSError.fromNSSCode(code, operation)
            }
            if flushed { return }
            try await waitUntilWritable(operation)
        }
    }
}

extension NSSRuntime {
    /// Forgets every client session, so that the next connections make full handshakes.
    public static func clearClientSessionCache() {
        guard Runtime.shared.isRunning else { return }
        SSL_ClearSessionCache()
    }
}
