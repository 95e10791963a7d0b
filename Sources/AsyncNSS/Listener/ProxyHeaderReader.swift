internal import CNSS

/// Reads the PROXY protocol header in front of a new connection (see
/// ``ProxyProtocolPolicy/required``) before NSS sees the socket.
///
/// The bytes are read into the socket's read-ahead layer, the header is
/// parsed there and dropped, and whatever followed it (the ClientHello)
/// stays in the layer, where NSS finds it as if it came from the socket.
enum ProxyHeaderReader {
    /// Reads and returns the header of `socket` (plain TCP with the
    /// read-ahead layer pushed, nonblocking).
    ///
    /// - Throws: ``TLSError/Kind/proxyProtocol`` for a missing or malformed
    ///   header, ``TLSError/Kind/handshakeTimedOut`` at `deadline`,
    ///   ``TLSError/Kind/closed`` when the peer closes first, or `CancellationError`.
    static func read(on socket: SocketHandle, deadline: ContinuousClock.Instant, operation: @autoclosure () -> String) async throws -> ProxyProtocolHeader {
        // Waits below are for more of the header, not for the part held.
        try socket.withFD(operation()) { ReadAheadLayer.setCollecting($0, true) }
        defer { _ = try? socket.withFD(operation()) { ReadAheadLayer.setCollecting($0, false) } }
        while true {
            let step = try socket.withFD(operation()) { fd -> Step in
                switch ProxyProtocolHeader.parse(Array(ReadAheadLayer.buffered(fd).prefix(ProxyProtocolHeader.maximumLength))) {
                case .complete(let header, let length):
                    _ = ReadAheadLayer.discard(fd, count: length)
                    return .header(header)
                case .invalid(let reason):
                    return .invalid(reason)
                case .needMore:
                    let read = ReadAheadLayer.readMore(fd)
                    if read > 0 { return .readMore }
                    if read == 0 { return .ended }
                    let code = PR_GetError()
                    return code == NSSErrors.wouldBlock ? .wait : .failed(TLSError.fromNSSCode(code, operation()))
                }
            }
            switch step {
            case .header(let header):
                return header
            case .invalid(let reason):
                throw TLSError(kind: .proxyProtocol, operation: operation(), message: reason)
            case .readMore:
                continue
            case .ended:
                throw TLSError(kind: .closed, operation: operation(), message: "the peer closed the connection before its PROXY protocol header was complete")
            case .failed(let error):
                throw error
            case .wait:
                break
            }
            switch await socket.wait(for: .read, deadline: deadline) {
            case .ready, .interrupted:
                continue
            case .timedOut:
                throw TLSError(kind: .handshakeTimedOut, operation: operation(), message: "no complete PROXY protocol header arrived in time")
            case .cancelled:
                throw CancellationError()
            case .closed, .shutDown:
                throw TLSError(kind: .closed, operation: operation(), message: "the socket was closed before its PROXY protocol header arrived")
            }
        }
    }

    private enum Step {
        case header(ProxyProtocolHeader)
        case invalid(String)
        case readMore
        case ended
        case wait
        case failed(TLSError)
    }
}
