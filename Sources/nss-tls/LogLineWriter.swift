#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Writes log lines to a descriptor from a thread of its own, in batches.
///
/// `serve` logs a line per connection, on the event loop that served it.
/// Written there, each line would cost the loop a system call, and a slow
/// reader of standard error (a full pipe, a paused terminal) would stop the
/// loop and every connection on it. Here the loop copies the line into a
/// queue instead; the writer thread gathers lines for ``gatherDelay`` and
/// writes them together. Lines that cannot wait (warnings and errors, and a
/// ``flush(timeout:)``) cut the gathering short.
///
/// When the descriptor does not keep up and the queue holds ``capacity``
/// bytes, further lines are dropped and counted, and the writer says how
/// many in a line of its own once it can write again: logging never blocks.
///
/// Each `write(2)` ends at a line boundary and is at most `PIPE_BUF` bytes
/// long when the lines allow, so lines from several processes on one pipe
/// (`serve --workers`) do not interleave.
// @unchecked Sendable: `queue`, `started` and `stopping` are read and written only
// between pthread_mutex_lock and pthread_mutex_unlock on `mutex`; the other
// stored properties are constants.
final class LogLineWriter: @unchecked Sendable {
    /// Most bytes of lines held for writing.
    static let capacity = 1 << 20
    /// How long the writer collects lines after the first one before it
    /// writes them.
    static let gatherDelay: Duration = .milliseconds(100)

    private let descriptor: Int32
    private let dropNotice: @Sendable (Int) -> [UInt8]
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// Signalled when lines arrive for a waiting writer, or must not wait.
    private let linesArrived = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Broadcast after every batch, for ``flush(timeout:)``.
    private let batchFinished = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue: LogLineQueue
    private var started = false
    private var stopping = false

    /// A writer to `descriptor`; `dropNotice` makes the line that says how
    /// many lines were dropped.
    init(descriptor: Int32, capacity: Int = LogLineWriter.capacity, dropNotice: @escaping @Sendable (Int) -> [UInt8]) {
        self.descriptor = descriptor
        self.dropNotice = dropNotice
        queue = LogLineQueue(capacity: capacity)
        pthread_mutex_init(mutex, nil)
        Self.initMonotonicCondition(linesArrived)
        Self.initMonotonicCondition(batchFinished)
    }

    // The writer thread holds the writer until ``stop()``; the process's
    // own writer is never stopped.
    deinit {
        pthread_cond_destroy(batchFinished)
        pthread_cond_destroy(linesArrived)
        pthread_mutex_destroy(mutex)
        batchFinished.deallocate()
        linesArrived.deallocate()
        mutex.deallocate()
    }

    /// Queues one whole line (ending in a newline). Never blocks on the
    /// descriptor; `urgent` lines are written without gathering.
    func append(_ line: UnsafeRawBufferPointer, urgent: Bool) {
        pthread_mutex_lock(mutex)
        let signal = queue.append(line, urgent: urgent)
        let start = !started
        started = true
        pthread_mutex_unlock(mutex)
        if start {
            startThread()
        } else if signal {
            pthread_cond_signal(linesArrived)
        }
    }

    /// Waits until every line appended before the call is written, or
    /// `timeout` passes (standard error may never take them). For the end
    /// of the process, and before writing to standard error directly.
    func flush(timeout: Duration = .seconds(2)) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard started else { return }
        let (target, signal) = queue.requestFlush()
        if signal { pthread_cond_signal(linesArrived) }
        var deadline = Self.monotonicDeadline(after: timeout)
        while !queue.hasFinished(target) {
            if pthread_cond_timedwait(batchFinished, mutex, &deadline) == ETIMEDOUT { return }
        }
    }

    /// Writes what is queued and ends the writer thread; lines appended
    /// afterwards start a new one. For writers that do not live as long as
    /// the process (in tests).
    func stop() {
        flush()
        pthread_mutex_lock(mutex)
        stopping = started
        pthread_mutex_unlock(mutex)
        pthread_cond_signal(linesArrived)
        pthread_mutex_lock(mutex)
        while stopping { pthread_cond_wait(batchFinished, mutex) }
        pthread_mutex_unlock(mutex)
    }

    /// Starts the writer thread. If no thread can be made, the caller writes
    /// what is queued itself, and the next line tries again.
    private func startThread() {
        let started = DetachedThread.start { [self] in run() }
        guard !started else { return }
        // No thread: write what is queued now, on the caller.
        pthread_mutex_lock(mutex)
        let batch = queue.takeBatch(spare: [])
        self.started = false
        pthread_mutex_unlock(mutex)
        write(batch)
        pthread_mutex_lock(mutex)
        queue.finishBatch(byteCount: batch.bytes.count, droppedLines: batch.dropped)
        pthread_mutex_unlock(mutex)
    }

    /// The writer thread: sleep until lines arrive, gather more for
    /// ``gatherDelay`` unless hurried, write them, repeat.
    private func run() {
        var spare: [UInt8] = []
        pthread_mutex_lock(mutex)
        while true {
            while queue.isEmpty {
                if stopping {
                    stopping = false
                    started = false
                    pthread_cond_broadcast(batchFinished)
                    pthread_mutex_unlock(mutex)
                    return
                }
                queue.writerWaits()
                pthread_cond_wait(linesArrived, mutex)
            }
            if !queue.hurry {
                var deadline = Self.monotonicDeadline(after: Self.gatherDelay)
                while !queue.hurry, pthread_cond_timedwait(linesArrived, mutex, &deadline) != ETIMEDOUT {}
            }
            let batch = queue.takeBatch(spare: spare)
            pthread_mutex_unlock(mutex)
            write(batch)
            spare = batch.bytes
            pthread_mutex_lock(mutex)
            queue.finishBatch(byteCount: batch.bytes.count, droppedLines: batch.dropped)
            pthread_cond_broadcast(batchFinished)
        }
    }

    /// Writes a batch in pieces that end at line boundaries, then the
    /// notice of dropped lines. A failing descriptor loses the batch.
    private func write(_ batch: (bytes: [UInt8], dropped: Int)) {
        batch.bytes.withUnsafeBytes { bytes in
            for piece in LinePieces(bytes, limit: Int(PIPE_BUF)) {
                try? StandardOutput.writeAll(piece, to: descriptor, operation: "writing log lines")
            }
        }
        if batch.dropped > 0 {
            let notice = dropNotice(batch.dropped)
            notice.withUnsafeBytes { try? StandardOutput.writeAll($0, to: descriptor, operation: "writing log lines") }
        }
    }

    private static func initMonotonicCondition(_ condition: UnsafeMutablePointer<pthread_cond_t>) {
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    private static func monotonicDeadline(after duration: Duration) -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let (seconds, attoseconds) = duration.components
        var nanoseconds = Int(now.tv_nsec) + Int(attoseconds / 1_000_000_000)
        var wholeSeconds = Int(now.tv_sec) + Int(seconds)
        if nanoseconds >= 1_000_000_000 {
            nanoseconds -= 1_000_000_000
            wholeSeconds += 1
        }
        return timespec(tv_sec: wholeSeconds, tv_nsec: nanoseconds)
    }
}

/// Splits whole lines into runs of at most `limit` bytes, each ending at a
/// line boundary; a single line longer than `limit` is a run of its own.
struct LinePieces: Sequence, IteratorProtocol {
    private let bytes: UnsafeRawBufferPointer
    private let limit: Int
    private var start = 0

    init(_ bytes: UnsafeRawBufferPointer, limit: Int) {
        self.bytes = bytes
        self.limit = limit
    }

    mutating func next() -> UnsafeRawBufferPointer? {
        guard start < bytes.count else { return nil }
        var end = start
        var lastLineEnd: Int?
        while end < bytes.count {
            let isNewline = bytes[end] == UInt8(ascii: "\n")
            end += 1
            if isNewline {
                if end - start > limit { break }
                lastLineEnd = end
            }
        }
        let pieceEnd = lastLineEnd ?? end
        defer { start = pieceEnd }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<pieceEnd])
    }
}
