import Logging
import Synchronization

/// A swift-log handler that keeps every message, so tests can assert on what
/// the listener reported.
struct CapturingLogHandler: LogHandler {
    final class Store: Sendable {
        private let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }

        /// Lines that report trouble: at warning level or above, or saying
        /// that something failed; except those containing one of `allowed`.
        func problems(allowing allowed: [String] = []) -> [String] {
            all.filter { line in
                let level = line.prefix { $0 != " " }
                let troubled = ["warning", "error", "critical"].contains(level) || line.contains("failed")
                return troubled && !allowed.contains { line.contains($0) }
            }
        }

        /// Waits up to `seconds` for a line containing every one of `fragments`.
        func waitForLine(containing fragments: [String], seconds: Double = 5) async -> String? {
            let deadline = ContinuousClock.now + .seconds(seconds)
            repeat {
                if let line = all.first(where: { line in fragments.allSatisfy { line.contains($0) } }) { return line }
                try? await Task.sleep(for: .milliseconds(20))
            } while ContinuousClock.now < deadline
            return nil
        }
    }

    let store: Store
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let rendered = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        store.append("\(event.level) \(event.message) \(rendered)")
    }

    static func logger() -> (Logger, Store) {
        let store = Store()
        return (Logger(label: "test") { _ in CapturingLogHandler(store: store) }, store)
    }
}
