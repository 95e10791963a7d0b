import AsyncNSS
import Synchronization

/// The `--keylog` files of this process, each opened once: a configuration
/// made again for a reload reuses the open file instead of opening it (and
/// warning about it) once more.
enum KeyLogFiles {
    private static let opened = Mutex<[String: TLSKeyLog]>([:])

    static func open(_ path: String) async throws -> TLSKeyLog {
        if let log = opened.withLock({ $0[path] }) { return log }
        let log = try await TLSKeyLog.file(path)
        return opened.withLock { opened in
            if let first = opened[path] { return first }
            opened[path] = log
            return log
        }
    }
}
