import Glibc
import Logging
import Synchronization

/// The tool's log handler: the lines of swift-log's `StreamLogHandler`, on
/// standard error, formatted without a heap allocation when the line has no
/// metadata beyond the handler's own.
///
/// `serve` logs a line per connection. `StreamLogHandler` makes about three
/// heap objects for each (its timestamp's buffer and string, the line) and
/// writes through stdio's lock. This handler formats the line into a
/// buffer on the stack and hands it to a ``LogLineWriter``, which writes
/// lines in batches from a thread of its own (or, with a descriptor, to one
/// `write(2)` at once). A line that logs metadata, or that is longer than
/// the buffer, is built on the heap.
///
/// The format is `StreamLogHandler`'s:
/// `2026-12-06T21:47:49+0000 info nss-tls: key=value [source] message`.
struct StandardErrorLogHandler: LogHandler {
    /// Longest line formatted on the stack; longer ones go to the heap.
    static let stackLineCapacity = 512

    /// Where the lines go.
    enum Output: Sendable {
        /// Written at once, one `write(2)` per line (a test's pipe).
        case descriptor(Int32)
        /// Queued for the writer's thread.
        case writer(LogLineWriter)
        /// Nowhere: the process has no standard error.
        case discarded
    }

    let label: String
    let output: Output
    var logLevel: Logger.Level = .info
    var metadataProvider: Logger.MetadataProvider?
    var metadata: Logger.Metadata = [:] {
        didSet { metadataText = Self.text(of: metadata) }
    }
    /// `metadata` as the line shows it, formatted when it changes.
    private var metadataText: String?

    init(label: String, output: Output, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.output = output
        self.metadataProvider = metadataProvider
    }

    /// One line in the handler's format, for a line the tool makes itself.
    static func line(level: Logger.Level, label: String, message: String) -> [UInt8] {
        let handler = StandardErrorLogHandler(label: label, output: .discarded, metadataProvider: nil)
        let event = LogEvent(level: level, message: "\(message)", metadata: nil, source: "nss_tls", file: #fileID, function: #function, line: #line)
        var bytes = [UInt8](repeating: 0, count: handler.maximumLength(event, metadataText: nil))
        let count = bytes.withUnsafeMutableBufferPointer { buffer in
            var line = LineBuilder(buffer)
            handler.format(event, metadataText: nil, into: &line)
            return line.bytes?.count ?? 0
        }
        return Array(bytes[..<count])
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let metadataText = lineMetadata(event)
        let written = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.stackLineCapacity) { buffer in
            var line = LineBuilder(buffer)
            format(event, metadataText: metadataText, into: &line)
            guard let bytes = line.bytes else { return false }
            write(bytes, level: event.level)
            return true
        }
        if written { return }
        var heapLine = [UInt8](repeating: 0, count: maximumLength(event, metadataText: metadataText))
        heapLine.withUnsafeMutableBufferPointer { buffer in
            var line = LineBuilder(buffer)
            format(event, metadataText: metadataText, into: &line)
            if let bytes = line.bytes { write(bytes, level: event.level) }
        }
    }

    private func format(_ event: LogEvent, metadataText: String?, into line: inout LineBuilder) {
        line.appendTimestamp()
        line.append(" ")
        line.append(event.level.rawValue)
        if !label.isEmpty { line.append(" ") }
        line.append(label)
        line.append(":")
        if let metadataText {
            line.append(" ")
            line.append(metadataText)
        }
        line.append(" [")
        line.append(event.source)
        line.append("] ")
        line.append(event.message.description)
        line.append("\n")
    }

    /// An upper bound on the length of the line `format` makes.
    private func maximumLength(_ event: LogEvent, metadataText: String?) -> Int {
        let separators = 16
        return LineBuilder.timestampCapacity + separators + event.level.rawValue.utf8.count + label.utf8.count
            + (metadataText?.utf8.count ?? 0) + event.source.utf8.count + event.message.description.utf8.count
    }

    /// The metadata text of the line: the handler's own, formatted once,
    /// unless the provider or the event adds to it (as `StreamLogHandler`
    /// merges them: provided over the handler's, explicit over both).
    private func lineMetadata(_ event: LogEvent) -> String? {
        let provided = metadataProvider?.get() ?? [:]
        let explicit = event.metadata ?? [:]
        if provided.isEmpty, explicit.isEmpty, event.error == nil { return metadataText }
        var merged = metadata
        merged.merge(provided) { _, provided in provided }
        merged.merge(explicit) { _, explicit in explicit }
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        return Self.text(of: merged)
    }

    private static func text(of metadata: Logger.Metadata) -> String? {
        metadata.isEmpty ? nil : metadata.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: " ")
    }

    /// Writes `bytes` whole, unless the descriptor fails, or queues them;
    /// warnings and worse are not held back to gather more lines.
    private func write(_ bytes: UnsafeBufferPointer<UInt8>, level: Logger.Level) {
        switch output {
        case .descriptor(let descriptor):
            try? StandardOutput.writeAll(UnsafeRawBufferPointer(bytes), to: descriptor, operation: "writing a log line")
        case .writer(let writer):
            writer.append(UnsafeRawBufferPointer(bytes), urgent: level >= .warning)
        case .discarded:
            break
        }
    }
}

/// Bytes appended into a fixed buffer; `bytes` is nil if they did not fit.
private struct LineBuilder {
    /// `strftime`'s room for `%Y-%m-%dT%H:%M:%S%z` and its terminating zero.
    static let timestampCapacity = 40

    private let buffer: UnsafeMutableBufferPointer<UInt8>
    private var count = 0
    private var overflowed = false

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        self.buffer = buffer
    }

    var bytes: UnsafeBufferPointer<UInt8>? {
        overflowed ? nil : UnsafeBufferPointer(rebasing: buffer[..<count])
    }

    mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            guard !overflowed, utf8.count <= buffer.count - count else {
                overflowed = true
                return
            }
            _ = UnsafeMutableBufferPointer(rebasing: buffer[count...]).initialize(fromContentsOf: utf8)
            count += utf8.count
        }
    }

    /// The local time, as `StreamLogHandler` stamps it.
    mutating func appendTimestamp() {
        guard !overflowed, buffer.count - count >= Self.timestampCapacity else {
            overflowed = true
            return
        }
        let destination = UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[count...])
        guard let written = LogTimestamp.write(into: destination) else {
            append("<unknown>")
            return
        }
        count += written
    }
}

/// The local time as log lines show it, formatted once per second: a busy
/// server logs many lines in each, and `localtime_r` with `strftime` cost
/// more than the rest of the line.
enum LogTimestamp {
    private struct Formatted {
        var second: time_t = -1
        var count = 0
        var text = InlineArray<40, UInt8>(repeating: 0)
    }

    private static let latest = Mutex(Formatted())

    /// Writes the stamp for now into `destination` (at least
    /// ``LineBuilder/timestampCapacity`` bytes); nil if the time has no
    /// local form.
    static func write(into destination: UnsafeMutableRawBufferPointer) -> Int? {
        let now = time(nil)
        let cached = latest.withLock { formatted -> Int? in
            guard formatted.second == now else { return nil }
            copy(formatted, into: destination)
            return formatted.count
        }
        if let cached { return cached }
        var formatted = Formatted()
        formatted.second = now
        var clock = now
        var local = tm()
        guard localtime_r(&clock, &local) != nil else { return nil }
        var span = formatted.text.mutableSpan
        formatted.count = span.withUnsafeMutableBufferPointer { text in
            text.withMemoryRebound(to: CChar.self) { characters in
                strftime(characters.baseAddress, characters.count, "%Y-%m-%dT%H:%M:%S%z", &local)
            }
        }
        copy(formatted, into: destination)
        latest.withLock { $0 = formatted }
        return formatted.count
    }

    private static func copy(_ formatted: Formatted, into destination: UnsafeMutableRawBufferPointer) {
        formatted.text.span.withUnsafeBufferPointer { text in
            destination.copyMemory(from: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: text[..<formatted.count])))
        }
    }
}
