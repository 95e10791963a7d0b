import Glibc
@testable import nss_tls
import Testing

/// The queue between the threads that log and the writer thread, its
/// decisions alone; then the writer on real pipes.
@Suite(.timeLimit(.minutes(1)))
struct LogLineWriterTests {
    private static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    private static func append(_ text: String, to queue: inout LogLineQueue, urgent: Bool = false) -> Bool {
        bytes(text).withUnsafeBytes { queue.append($0, urgent: urgent) }
    }

    // MARK: the queue

    @Test("only the first line wakes a waiting writer; lines while it gathers or writes do not")
    func firstLineWakes() {
        var queue = LogLineQueue(capacity: 1024)
        queue.writerWaits()
        #expect(Self.append("a\n", to: &queue))
        #expect(!Self.append("b\n", to: &queue))
        let batch = queue.takeBatch(spare: [])
        #expect(batch.bytes == Self.bytes("a\nb\n"))
        #expect(queue.writer == .writing)
        #expect(!Self.append("c\n", to: &queue))
        queue.finishBatch(byteCount: batch.bytes.count, droppedLines: batch.dropped)
        #expect(queue.finished == 4)
        #expect(queue.appended == 6)
        #expect(!queue.isEmpty)
    }

    @Test("an urgent line wakes a gathering writer and ends the gathering")
    func urgentLineHurries() {
        var queue = LogLineQueue(capacity: 1024)
        queue.writerWaits()
        #expect(Self.append("info\n", to: &queue))
        #expect(!queue.hurry)
        #expect(Self.append("warning\n", to: &queue, urgent: true))
        #expect(queue.hurry)
        _ = queue.takeBatch(spare: [])
        #expect(!queue.hurry)
    }

    @Test("a line that does not fit is dropped and counted, and the count goes with the next batch")
    func fullQueueDrops() {
        var queue = LogLineQueue(capacity: 8)
        queue.writerWaits()
        #expect(Self.append("12345\n", to: &queue))
        #expect(!Self.append("678\n", to: &queue))
        #expect(!Self.append("9\n", to: &queue))
        #expect(queue.dropped == 1)
        let batch = queue.takeBatch(spare: [])
        #expect(batch.bytes == Self.bytes("12345\n9\n"))
        #expect(batch.dropped == 1)
        #expect(queue.dropped == 0)
        #expect(queue.appended == 8)
    }

    @Test("a flush of an empty queue waits for nothing; of a full one, hurries the writer")
    func flushRequests() {
        var queue = LogLineQueue(capacity: 1024)
        queue.writerWaits()
        let idle = queue.requestFlush()
        #expect(idle.target == LogLineQueue.FlushTarget(bytes: 0, droppedLines: 0))
        #expect(!idle.signal)
        #expect(!queue.hurry)
        #expect(Self.append("a\n", to: &queue))
        let busy = queue.requestFlush()
        #expect(busy.target == LogLineQueue.FlushTarget(bytes: 2, droppedLines: 0))
        #expect(busy.signal)
        #expect(queue.hurry)
    }

    @Test("a flush with only dropped lines pending waits for their notice")
    func flushWaitsForDropNotice() {
        var queue = LogLineQueue(capacity: 4)
        queue.writerWaits()
        #expect(Self.append("12345\n", to: &queue))
        #expect(queue.pending.isEmpty)
        let flush = queue.requestFlush()
        #expect(flush.target == LogLineQueue.FlushTarget(bytes: 0, droppedLines: 1))
        #expect(flush.signal)
        #expect(!queue.hasFinished(flush.target))
        let batch = queue.takeBatch(spare: [])
        #expect(batch.dropped == 1)
        #expect(!queue.hasFinished(flush.target), "taken is not yet written")
        queue.finishBatch(byteCount: batch.bytes.count, droppedLines: batch.dropped)
        #expect(queue.hasFinished(flush.target))
    }

    @Test("the writer's buffer is reused: the spare one becomes the queue's")
    func spareBufferReused() {
        var queue = LogLineQueue(capacity: 1024)
        var spare: [UInt8] = []
        spare.reserveCapacity(512)
        _ = Self.append("a\n", to: &queue)
        _ = queue.takeBatch(spare: spare)
        #expect(queue.pending.isEmpty)
        #expect(queue.pending.capacity >= 512)
    }

    // MARK: pieces of a batch

    @Test("a batch is cut at line ends into pieces of at most the limit; a longer line is a piece alone")
    func linePieces() {
        let text = "aaa\nbbb\ncc\n" + String(repeating: "x", count: 12) + "\nd\n"
        let pieces = Self.bytes(text).withUnsafeBytes { bytes in
            LinePieces(bytes, limit: 8).map { String(decoding: $0, as: UTF8.self) }
        }
        #expect(pieces == ["aaa\nbbb\n", "cc\n", String(repeating: "x", count: 12) + "\n", "d\n"])
        #expect(pieces.joined() == text)
    }

    // MARK: the writer, on pipes

    private struct PipeError: Error {}

    /// A pipe whose read end is nonblocking, and everything it holds.
    private final class TestPipe {
        let readEnd: Int32
        let writeEnd: Int32

        init() throws {
            var ends: [Int32] = [-1, -1]
            guard pipe(&ends) == 0 else { throw PipeError() }
            readEnd = ends[0]
            writeEnd = ends[1]
            _ = fcntl(readEnd, F_SETFL, fcntl(readEnd, F_GETFL) | O_NONBLOCK)
        }

        deinit {
            close(readEnd)
            close(writeEnd)
        }

        func drain() -> String {
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = read(readEnd, &chunk, chunk.count)
                guard count > 0 else { break }
                bytes += chunk[..<count]
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    private static func line(_ number: Int) -> String { "line \(number)\n" }

    @Test("lines from several threads arrive whole, each thread's in order, after a flush")
    func linesArriveAfterFlush() async throws {
        let pipe = try TestPipe()
        let writer = LogLineWriter(descriptor: pipe.writeEnd) { _ in [] }
        defer { writer.stop() }
        await withTaskGroup(of: Void.self) { group in
            for thread in 0..<4 {
                group.addTask {
                    for number in 0..<200 {
                        Self.bytes("t\(thread) \(number)\n").withUnsafeBytes { writer.append($0, urgent: false) }
                    }
                }
            }
        }
        writer.flush()
        let lines = pipe.drain().split(separator: "\n")
        #expect(lines.count == 800)
        for thread in 0..<4 {
            let numbers = lines.filter { $0.hasPrefix("t\(thread) ") }.compactMap { Int($0.split(separator: " ")[1]) }
            #expect(numbers == Array(0..<200))
        }
    }

    @Test("a flush returns once the notice of lines dropped alone is written")
    func flushWritesDropNotice() throws {
        let pipe = try TestPipe()
        let writer = LogLineWriter(descriptor: pipe.writeEnd, capacity: 4) { count in Self.bytes("dropped \(count)\n") }
        defer { writer.stop() }
        Self.bytes("longer than four bytes\n").withUnsafeBytes { writer.append($0, urgent: false) }
        writer.flush()
        #expect(pipe.drain() == "dropped 1\n")
    }

    @Test("appending never waits for a pipe nobody reads: lines past the capacity are dropped and reported once it drains")
    func stalledPipeDoesNotBlock() throws {
        let pipe = try TestPipe()
        let writer = LogLineWriter(descriptor: pipe.writeEnd, capacity: 4096) { count in Self.bytes("dropped \(count)\n") }
        defer { writer.stop() }
        // 64 KiB fill the pipe; 4 KiB more fill the queue; the rest is dropped.
        let lines = 20_000
        // Returning from these calls at all is the point: a blocking append
        // would hang here until the time limit.
        for number in 0..<lines {
            Self.bytes(Self.line(number)).withUnsafeBytes { writer.append($0, urgent: false) }
        }
        var text = ""
        var written: [Substring] = []
        var dropped = 0
        for _ in 0..<400 where written.count + dropped < lines {
            text += pipe.drain()
            writer.flush(timeout: .milliseconds(50))
            text += pipe.drain()
            let all = text.split(separator: "\n")
            written = all.filter { $0.hasPrefix("line ") }
            dropped = all.compactMap { line in line.hasPrefix("dropped ") ? Int(line.dropFirst(8)) : nil }.reduce(0, +)
        }
        #expect(dropped > 0)
        #expect(written.count + dropped == lines, "every line is written or counted as dropped")
        #expect(written.first == "line 0")
    }
}
