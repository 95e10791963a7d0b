import Foundation

/// Runs blocking test code (processes, raw sockets) on a thread of its own,
/// never on the cooperative pool, which has only as many threads as cores.
func onOwnThread<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) async throws -> Result {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Swift.Result { try body() })
        }
        thread.start()
    }
}

/// Counts and inspects this process's file descriptors.
enum FileDescriptors {
    static func count() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    /// Waits up to `seconds` for the count to come back to `baseline` (closes
    /// finish asynchronously), and returns the last count seen.
    static func settle(at baseline: Int, seconds: Double = 5) async -> Int {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var current = count()
        while current > baseline, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
            current = count()
        }
        return current
    }
}

/// A scratch directory removed when the value is dropped.
final class TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "asyncnss-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func write(_ name: String, _ contents: String) throws -> String {
        let target = file(name)
        try contents.write(toFile: target, atomically: true, encoding: .utf8)
        return target
    }
}
