internal import CNSS

/// One nonblocking NSPR call each, shared by TLS and plain TCP sockets. The
/// callers decide what an error code means for them.
extension SocketHandle {
    enum ReadStep {
        case bytes([UInt8])
        /// `PR_Read` returned 0.
        case endOfStream
        /// `PR_Read` failed with this code (`PR_WOULD_BLOCK_ERROR` among them).
        case failed(PRErrorCode)
    }

    enum AcceptStep {
        case accepted(PollSocket, NetworkAddress)
        /// `PR_Accept` failed with this code (`PR_WOULD_BLOCK_ERROR` among them).
        case failed(PRErrorCode)
    }

    /// The largest plaintext of one TLS record (RFC 8446 §5.1). A `PR_Read`
    /// on an SSL socket returns the plaintext of at most one record (NSS's
    /// `DoRecv` hands out what one gathered record holds), so a TLS read
    /// never needs a larger buffer: asking for 64 KiB would allocate 64 KiB
    /// to receive at most 16 KiB.
    static let maximumTLSReadSize = 16 * 1024

    /// One nonblocking `PR_Read` of at most `maxBytes` bytes.
    func readSome(maxBytes: Int, operation: @autoclosure () -> String) throws -> ReadStep {
        try withFD(operation()) { fd in Self.read(fd, maxBytes: maxBytes) }
    }

    /// One nonblocking `PR_Read` of at most `maxBytes` bytes on a descriptor
    /// the caller holds through ``withFD(_:_:)``, straight into the array it
    /// returns.
    static func read(_ fd: UnsafeMutablePointer<PRFileDesc>, maxBytes: Int) -> ReadStep {
        var code: PRErrorCode = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: max(1, maxBytes)) { buffer, count in
            let result = PR_Read(fd, buffer.baseAddress, Int32(clamping: buffer.count))
            count = max(0, Int(result))
            if result < 0 { code = PR_GetError() }
        }
        if !bytes.isEmpty { return .bytes(bytes) }
        return code == 0 ? .endOfStream : .failed(code)
    }

    /// One nonblocking `PR_Write` of `bytes[offset...]`: the number of bytes
    /// NSS took, or 0 when the socket would block.
    ///
    /// Gotcha 6: after a partial write the next call must start exactly at the
    /// first byte not taken; NSS has already encrypted one byte more.
    func writeSome(_ bytes: [UInt8], from offset: Int, operation: @autoclosure () -> String) throws -> Int {
        try bytes.withUnsafeBufferPointer { buffer in
            try withFD(operation()) { fd -> Int in
                let count = PR_Write(fd, buffer.baseAddress.map { $0 + offset }, Int32(clamping: buffer.count - offset))
                if count >= 0 { return Int(count) }
                let code = PR_GetError()
                if code == NSSErrors.wouldBlock { return 0 }
                throw TLSError.fromNSSCode(code, operation())
            }
        }
    }

    /// One nonblocking `PR_Accept` on a listening socket.
    func acceptSome(operation: @autoclosure () -> String) throws -> AcceptStep {
        try withFD(operation()) { fd in
            var peer = PRNetAddr()
            if let accepted = PR_Accept(fd, &peer, PRIntervalTime(PR_INTERVAL_NO_WAIT)) {
                TCPSocketOptions.setCloseOnExec(accepted)
                return .accepted(PollSocket(fd: accepted), NetworkAddress(raw: peer))
            }
            return .failed(PR_GetError())
        }
    }

    /// Waits on the poll thread until the socket may be ready for `interest`.
    ///
    /// - Throws: `CancellationError` when the task is cancelled (the caller
    ///   closes what it owns), ``TLSError/Kind/closed`` with `closedMessage`
    ///   when the socket or the runtime closes.
    /// Pass `id` (from ``makeWaitID()``) to let another task end the wait
    /// early with ``interruptWait(_:)``; the call then returns as if ready.
    nonisolated(nonsending) func waitUntilReady(for interest: PollInterest, id: PollWaitID? = nil, operation: @autoclosure () -> String, closedMessage: String) async throws {
        switch await wait(for: interest, id: id) {
        case .ready, .interrupted:
            return
        case .cancelled:
            throw CancellationError()
        case .closed, .timedOut, .shutDown:
            throw TLSError(kind: .closed, operation: operation(), message: closedMessage)
        }
    }
}
