#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed `read` or `write` on a standard stream.
struct StandardStreamError: Error, CustomStringConvertible {
    let operation: String
    let code: Int32

    var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// Descriptors 0, 1 and 2 as the process started with them.
enum StandardDescriptors {
    /// Whether `descriptor` is a file, pipe, terminal or socket.
    ///
    /// When the tool is started with a standard stream closed (`<&-`), the
    /// Swift runtime's event loop takes the free number for an epoll or
    /// eventfd descriptor before any of our code runs; such anonymous
    /// descriptors have no file type, and must not be read or written.
    static func isStream(_ descriptor: Int32) -> Bool {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return false }
        return status.st_mode & S_IFMT != 0
    }

    static let inputIsStream = isStream(0)
    static let outputIsStream = isStream(1)
    static let errorIsStream = isStream(2)
}

/// Writes to standard output and standard error with `write(2)`, unbuffered.
enum StandardOutput {
    /// Writes every byte to standard output, retrying partial writes.
    static func write(_ bytes: [UInt8]) throws(StandardStreamError) {
        guard StandardDescriptors.outputIsStream else {
            throw StandardStreamError(operation: "writing to standard output", code: EBADF)
        }
        try writeAll(bytes, to: 1, operation: "writing to standard output")
    }

    /// Writes `line` and a newline to standard output at once.
    static func writeLine(_ line: String) throws(StandardStreamError) {
        try write(Array((line + "\n").utf8))
    }

    /// Writes `line` and a newline to standard error, after the log lines
    /// queued before it, ignoring failures.
    static func printError(_ line: String) {
        guard StandardDescriptors.errorIsStream else { return }
        CommandLogging.flush()
        try? writeAll(Array((line + "\n").utf8), to: 2, operation: "writing to standard error")
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32, operation: String) throws(StandardStreamError) {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(StandardStreamError) in try writeAll(buffer, to: descriptor, operation: operation) }
        }
        try result.get()
    }

    /// Writes every byte of `bytes` to `descriptor`, retrying partial and
    /// interrupted writes, and waiting while a nonblocking descriptor is full.
    static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32, operation: String) throws(StandardStreamError) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let written = systemWrite(descriptor, base + offset, bytes.count - offset)
            if written > 0 {
                offset += written
                continue
            }
            let code = errno
            if written < 0, code == EINTR { continue }
            if written < 0, code == EAGAIN || code == EWOULDBLOCK {
                // A nonblocking descriptor: wait until it takes more.
                var entry = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&entry, 1, -1)
                continue
            }
            throw StandardStreamError(operation: operation, code: written < 0 ? code : EIO)
        }
    }
}

/// `write(2)`, named apart from ``StandardOutput/write(_:)``.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
