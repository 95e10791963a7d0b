import Dispatch

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

    /// Writes `line` and a newline to standard error, ignoring failures.
    static func printError(_ line: String) {
        guard StandardDescriptors.errorIsStream else { return }
        try? writeAll(Array((line + "\n").utf8), to: 2, operation: "writing to standard error")
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32, operation: String) throws(StandardStreamError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return systemWrite(descriptor, base + offset, buffer.count - offset)
            }
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

/// Standard input as an `AsyncSequence` of chunks, read on a dedicated thread.
///
/// The thread reads one chunk each time the consumer asks for the next one,
/// so a slow consumer holds back the reading rather than growing a buffer.
/// The sequence ends at end of file. One consumer.
struct StandardInput: AsyncSequence, Sendable {
    typealias Element = [UInt8]

    private let chunks: AsyncThrowingStream<[UInt8], any Error>
    private let demand: DispatchSemaphore

    /// Starts the reading thread; it waits for the first request before reading.
    static func start(chunkSize: Int = 16 * 1024) -> StandardInput {
        let (chunks, continuation) = AsyncThrowingStream.makeStream(of: [UInt8].self)
        let demand = DispatchSemaphore(value: 0)
        guard StandardDescriptors.inputIsStream else {
            // Standard input is closed: nothing to send.
            continuation.finish()
            return StandardInput(chunks: chunks, demand: demand)
        }
        let started = DetachedThread.start {
            while true {
                demand.wait()
                var chunk = [UInt8](repeating: 0, count: Swift.max(1, chunkSize))
                var count: Int
                var code: Int32 = 0
                repeat {
                    count = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                    code = count < 0 ? errno : 0
                } while code == EINTR
                if count > 0 {
                    chunk.removeLast(chunk.count - count)
                    continuation.yield(chunk)
                } else if count == 0 {
                    continuation.finish()
                    return
                } else {
                    continuation.finish(throwing: StandardStreamError(operation: "reading standard input", code: code))
                    return
                }
            }
        }
        if !started {
            continuation.finish(throwing: StandardStreamError(operation: "starting the standard input thread", code: EAGAIN))
        }
        return StandardInput(chunks: chunks, demand: demand)
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<[UInt8], any Error>.AsyncIterator
        let demand: DispatchSemaphore

        mutating func next() async throws -> [UInt8]? {
            demand.signal()
            return try await base.next()
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: chunks.makeAsyncIterator(), demand: demand)
    }
}
