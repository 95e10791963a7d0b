import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs real peers (openssl, curl, NSS's tstclnt and selfserv) as child processes.
///
/// Children are started with posix_spawn and reaped with waitpid on threads of
/// their own; Foundation's `Process.waitUntilExit` spins a run loop and can
/// miss the exit of a child it did not reap itself.
enum ExternalTool {
    /// The full path of `name` on PATH, or nil when it is not installed.
    static func path(_ name: String) -> String? {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for directory in directories + ["/usr/sbin", "/usr/lib/nss"] {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static func isInstalled(_ names: String...) -> Bool {
        names.allSatisfy { path($0) != nil }
    }

    struct Output: Sendable, CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String
        /// Whether the tool was killed at its timeout rather than exiting by itself.
        var killed = false
        /// How long the tool ran.
        var elapsed: Duration = .zero
        var description: String { "exit \(status)\(killed ? " (killed at the timeout)" : "") after \(elapsed)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }

        /// Whether the tool exited by itself with status 0.
        var exitedCleanly: Bool { status == 0 && !killed }
    }

    /// Runs a tool to completion with `input` on stdin, killing it after `timeout` seconds.
    static func run(_ name: String, _ arguments: [String], input: String = "", timeout: Double = 30) async throws -> Output {
        let started = ContinuousClock.now
        let child = try ChildProcess(name, arguments, input: input)
        let killer = Task { () -> Bool in
            try await Task.sleep(for: .seconds(timeout))
            child.signal(SIGKILL)
            return true
        }
        let status = try await onOwnThread { child.waitForExit() }
        killer.cancel()
        let killed = (try? await killer.value) == true
        let (stdout, stderr) = child.output()
        return Output(status: status, stdout: stdout, stderr: stderr, killed: killed, elapsed: .now - started)
    }

    struct ToolMissing: Error, CustomStringConvertible {
        let name: String
        var description: String { "\(name) is not installed" }
    }
}

/// Reads a descriptor to its end on a thread of its own.
// @unchecked Sendable: `data` is written by the reader thread before it
// signals `done`, and read only after `wait()` has seen that signal.
final class PipeCollector: @unchecked Sendable {
    private var data = [UInt8]()
    private let done = DispatchSemaphore(value: 0)

    init(_ fd: Int32) {
        Thread.detachNewThread { [self] in
            drain(fd) { data.append(contentsOf: $0) }
            done.signal()
        }
    }

    func wait() -> String {
        done.wait()
        done.signal()
        return String(decoding: data, as: UTF8.self)
    }
}

/// A child process with piped stdin, stdout and stderr.
// @unchecked Sendable: `pid` is set once in init; `exitStatus` is guarded by `lock`.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let stdout: PipeCollector
    private let stderr: PipeCollector
    private let lock = NSLock()
    private var exitStatus: Int32? = nil

    init(_ name: String, _ arguments: [String], input: String? = nil) throws {
        guard let executable = ExternalTool.path(name) else { throw ExternalTool.ToolMissing(name: name) }
        let child = try Spawn.start(executable: executable, arguments: arguments)
        pid = child.pid
        stdout = PipeCollector(child.standardOutput)
        stderr = PipeCollector(child.standardError)
        if let input {
            let bytes = Array(input.utf8)
            _ = bytes.withUnsafeBytes { write(child.standardInput, $0.baseAddress, $0.count) }
        }
        close(child.standardInput)
    }

    func signal(_ signal: Int32) {
        lock.lock()
        let running = exitStatus == nil
        lock.unlock()
        if running { kill(pid, signal) }
    }

    /// Blocks until the child exits; call it on a thread of your own.
    func waitForExit() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let code = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        lock.lock()
        exitStatus = code
        lock.unlock()
        return code
    }

    func output() -> (String, String) { (stdout.wait(), stderr.wait()) }

    /// Terminates the child, reaps it and returns what it printed.
    @discardableResult
    func stop() -> String {
        signal(SIGTERM)
        lock.lock()
        let reaped = exitStatus != nil
        lock.unlock()
        if !reaped { _ = waitForExit() }
        let (out, err) = output()
        return "--- stdout\n\(out)\n--- stderr\n\(err)"
    }

    deinit {
        signal(SIGKILL)
    }
}
