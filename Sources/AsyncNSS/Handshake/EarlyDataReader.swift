internal import CNSS

/// Reads the early data (0-RTT) that NSS holds for a server whose handshake
/// accepted it. NSS hands it out through `PR_Read` before the handshake
/// completes, but its socket does not poll readable for it: the reader must
/// look after each step of the handshake that would block.
enum EarlyDataReader {
    /// Whether the server accepted early data on `fd`'s handshake.
    static func accepted(_ fd: UnsafeMutablePointer<PRFileDesc>) -> Bool {
        var info = SSLPreliminaryChannelInfo()
        guard SSL_GetPreliminaryChannelInfo(fd, &info, PRUintn(MemoryLayout<SSLPreliminaryChannelInfo>.size)) == SECSuccess else { return false }
        return info.valuesSet & PRUint32(ssl_preinfo_0rtt_cipher_suite) != 0
    }

    enum Read {
        case bytes([UInt8])
        case wouldBlock
        /// The peer closed, or NSS failed with this code.
        case ended(PRErrorCode?)
    }

    /// One `PR_Read`. Before the handshake completes it hands out early
    /// data, and it drives the handshake too; unlike `SSL_ForceHandshake`,
    /// it stops (would block) at the client's EndOfEarlyData while early
    /// data is still held, so early bytes never come after the handshake.
    static func read(_ fd: UnsafeMutablePointer<PRFileDesc>) -> Read {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16 * 1024) { buffer -> Read in
            let count = PR_Read(fd, buffer.baseAddress, Int32(buffer.count))
            if count > 0 { return .bytes(Array(UnsafeBufferPointer(rebasing: buffer[0..<Int(count)]))) }
            if count == 0 { return .ended(nil) }
            let code = PR_GetError()
            return code == NSSErrors.wouldBlock ? .wouldBlock : .ended(code)
        }
    }
}
