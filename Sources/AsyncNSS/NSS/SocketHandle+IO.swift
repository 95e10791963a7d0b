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

    /// One nonblocking `PR_Read` of at most `maxBytes` bytes.
    func readSome(maxBytes: Int, operation: @autoclosure () -> String) throws -> ReadStep {
        try withFD(operation()) { fd in
            var code: PRErrorCode = 0
            let bytes = [UInt8](unsafeUninitializedCapacity: max(1, maxBytes)) { buffer, count in
                let result = PR_Read(fd, buffer.baseAddress, Int32(clamping: buffer.count))
                count = max(0, Int(result))
                if result < 0 { code = PR_GetError() }
            }
            if !bytes.isEmpty { return .bytes(bytes) }
            return code == 0 ? .endOfStream : .failed(code)
        }
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
    func waitUntilReady(for interest: PollInterest, operation: String, closedMessage: String) async throws {
        switch await wait(for: interest) {
        case .ready, .interrupted:
            return
        case .cancelled:
            throw CancellationError()
        case .closed, .timedOut, .shutDown:
            throw TLSError(kind: .closed, operation: operation, message: closedMessage)
        }
    }
}
