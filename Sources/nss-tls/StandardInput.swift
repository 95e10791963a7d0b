import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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
            return try await base.next(isolation: #isolation)
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: chunks.makeAsyncIterator(), demand: demand)
    }
}
