internal import CNSS

extension SocketHandle {
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
}
