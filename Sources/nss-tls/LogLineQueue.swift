/// The lines a ``LogLineWriter`` holds between the threads that log and its
/// own thread that writes them, and what that thread is doing. No locks and
/// no I/O: the writer keeps it behind its mutex and acts on what it returns.
struct LogLineQueue {
    /// What the writing thread is doing, as far as the threads that log care.
    enum WriterState: Equatable {
        /// Asleep until a line arrives; the first line must wake it.
        case waiting
        /// Woken, or gathering more lines before it writes; nobody needs to
        /// wake it again unless a line cannot wait.
        case gathering
        /// Writing a batch; it looks at the queue again when done.
        case writing
    }

    /// Most bytes held; a line that would pass it is dropped and counted.
    let capacity: Int
    private(set) var pending: [UInt8] = []
    /// Lines dropped since the last batch was taken.
    private(set) var dropped = 0
    /// Bytes accepted since the start, and bytes the writer has finished with.
    private(set) var appended: UInt64 = 0
    private(set) var finished: UInt64 = 0
    /// Lines dropped since the start, and those whose drop notice the
    /// writer has finished with.
    private(set) var droppedTotal: UInt64 = 0
    private(set) var droppedReported: UInt64 = 0
    private(set) var writer = WriterState.gathering
    /// Set by a line that cannot wait or by a flush: the writer writes
    /// without gathering.
    private(set) var hurry = false

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Whether the writer has nothing to write.
    var isEmpty: Bool { pending.isEmpty && dropped == 0 }

    /// Takes a whole line, or drops it if the queue is full. Returns whether
    /// the writer must be signalled: when it waits for a first line, or when
    /// `urgent` and it is gathering.
    mutating func append(_ line: UnsafeRawBufferPointer, urgent: Bool) -> Bool {
        guard line.count <= capacity - pending.count else {
            dropped += 1
            droppedTotal += 1
            return wakeWriter(urgent: urgent)
        }
        pending.append(contentsOf: line)
        appended += UInt64(line.count)
        return wakeWriter(urgent: urgent)
    }

    private mutating func wakeWriter(urgent: Bool) -> Bool {
        if urgent { hurry = true }
        switch writer {
        case .waiting:
            writer = .gathering
            return true
        case .gathering:
            return urgent
        case .writing:
            return false
        }
    }

    /// What a flush waits for: every byte appended, and the notice of every
    /// line dropped, before it asked.
    struct FlushTarget: Equatable {
        var bytes: UInt64
        var droppedLines: UInt64
    }

    /// A flush asks for everything appended or dropped so far: the writer
    /// stops gathering. Returns what the flush waits for (see
    /// ``hasFinished(_:)``), and whether the writer must be signalled.
    mutating func requestFlush() -> (target: FlushTarget, signal: Bool) {
        let target = FlushTarget(bytes: appended, droppedLines: droppedTotal)
        guard !hasFinished(target) else { return (target, false) }
        hurry = true
        return (target, wakeWriter(urgent: true))
    }

    /// Whether the writer has written (or lost to a failing descriptor)
    /// everything `target` asks for.
    func hasFinished(_ target: FlushTarget) -> Bool {
        finished >= target.bytes && droppedReported >= target.droppedLines
    }

    /// The writer found nothing to write and goes to sleep.
    mutating func writerWaits() {
        writer = .waiting
    }

    /// The writer takes every pending line (and its buffer, which `spare`
    /// replaces), and the count of lines dropped since the last batch.
    mutating func takeBatch(spare: [UInt8]) -> (bytes: [UInt8], dropped: Int) {
        var batch = spare
        batch.removeAll(keepingCapacity: true)
        swap(&batch, &pending)
        let droppedLines = dropped
        dropped = 0
        hurry = false
        writer = .writing
        return (batch, droppedLines)
    }

    /// The writer is done with a batch taken by ``takeBatch(spare:)``: its
    /// `byteCount` bytes and the notice of its `droppedLines`.
    mutating func finishBatch(byteCount: Int, droppedLines: Int) {
        finished += UInt64(byteCount)
        droppedReported += UInt64(droppedLines)
        writer = .gathering
    }
}
