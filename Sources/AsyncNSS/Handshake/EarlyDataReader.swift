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

    /// The next chunk NSS gives, or nil when it would block, ended or failed
    /// (the handshake's next step meets the same error and reports it).
    static func read(_ fd: UnsafeMutablePointer<PRFileDesc>) -> [UInt8]? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16 * 1024) { buffer -> [UInt8]? in
            let count = PR_Read(fd, buffer.baseAddress, Int32(buffer.count))
            guard count > 0 else { return nil }
            return Array(UnsafeBufferPointer(rebasing: buffer[0..<Int(count)]))
        }
    }
}
