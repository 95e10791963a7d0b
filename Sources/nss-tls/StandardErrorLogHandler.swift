import Glibc
import Logging

/// The tool's log handler: the lines of swift-log's `StreamLogHandler`, on
/// standard error, written without a heap allocation when the line has no
/// metadata beyond the handler's own.
///
/// `serve` logs a line per connection. `StreamLogHandler` makes about three
/// heap objects for each (its timestamp's buffer and string, the line) and
/// writes through stdio's lock. This handler formats the line into a
/// buffer on the stack and hands it to one `write(2)`. A line that logs
/// metadata, or that is longer than the buffer, is built on the heap.
///
/// The format is `StreamLogHandler`'s:
/// `2026-12-06T21:47:49+0000 info nss-tls: key=value [source] message`.
struct StandardErrorLogHandler: LogHandler {
    /// Longest line formatted on the stack; longer ones go to the heap.
    static let stackLineCapacity = 512

    let label: String
    /// Where the lines go: standard error, or a test's pipe.
    let descriptor: Int32
    var logLevel: Logger.Level = .info
    var metadataProvider: Logger.MetadataProvider?
    var metadata: Logger.Metadata = [:] {
        didSet { metadataText = Self.text(of: metadata) }
    }
    /// `metadata` as the line shows it, formatted when it changes.
    private var metadataText: String?

    init(label: String, descriptor: Int32 = STDERR_FILENO, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.descriptor = descriptor
        self.metadataProvider = metadataProvider
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
            write(bytes)
            return true
        }
        if written { return }
        var heapLine = [UInt8](repeating: 0, count: maximumLength(event, metadataText: metadataText))
        heapLine.withUnsafeMutableBufferPointer { buffer in
            var line = LineBuilder(buffer)
            format(event, metadataText: metadataText, into: &line)
            if let bytes = line.bytes { write(bytes) }
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

    /// Writes `bytes` whole, unless the descriptor fails. Standard error
    /// only if the process started with one (see ``StandardDescriptors``).
    private func write(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard descriptor != STDERR_FILENO || StandardDescriptors.errorIsStream else { return }
        try? StandardOutput.writeAll(UnsafeRawBufferPointer(bytes), to: descriptor, operation: "writing a log line")
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
        guard !overflowed, buffer.count - count >= Self.timestampCapacity, let base = buffer.baseAddress else {
            overflowed = true
            return
        }
        var now = time(nil)
        var local = tm()
        guard localtime_r(&now, &local) != nil else {
            append("<unknown>")
            return
        }
        count += base.advanced(by: count).withMemoryRebound(to: CChar.self, capacity: Self.timestampCapacity) {
            strftime($0, Self.timestampCapacity, "%Y-%m-%dT%H:%M:%S%z", &local)
        }
    }
}
