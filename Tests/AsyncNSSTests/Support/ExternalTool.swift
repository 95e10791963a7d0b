import Foundation

/// Runs real peers (openssl, curl, NSS's tstclnt and selfserv) as child processes.
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
        var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
    }

    /// Runs a tool to completion with `input` on stdin, killing it after `timeout` seconds.
    static func run(_ name: String, _ arguments: [String], input: String = "", timeout: Double = 30) async throws -> Output {
        guard let executable = path(name) else { throw ToolMissing(name: name) }
        return try await onOwnThread {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
            process.standardInput = stdin
            process.standardOutput = stdout
            process.standardError = stderr
            try process.run()
            let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try? stdin.fileHandleForWriting.close()
            let errorData = ErrorCollector(stderr.fileHandleForReading)
            let outData = stdout.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            killer.cancel()
            return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: errorData.wait())
        }
    }

    struct ToolMissing: Error, CustomStringConvertible {
        let name: String
        var description: String { "\(name) is not installed" }
    }
}

/// Reads a pipe to its end on a thread of its own.
final class ErrorCollector: @unchecked Sendable {
    // @unchecked Sendable: `data` is written by the reader thread before it
    // signals `done`, and read only after `wait()` has seen that signal.
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func wait() -> String {
        done.wait()
        return String(decoding: data, as: UTF8.self)
    }
}

/// A long-running child process (a server), stopped by `stop()` or on deinit.
final class ChildProcess: @unchecked Sendable {
    // @unchecked Sendable: `process` is configured before `init` returns and
    // afterwards only used through Foundation's thread-safe run-state calls.
    private let process = Process()
    private let output: ErrorCollector
    private let errors: ErrorCollector

    init(_ name: String, _ arguments: [String], directory: String? = nil) throws {
        guard let executable = ExternalTool.path(name) else { throw ExternalTool.ToolMissing(name: name) }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let stdout = Pipe(), stderr = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        output = ErrorCollector(stdout.fileHandleForReading)
        errors = ErrorCollector(stderr.fileHandleForReading)
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Terminates the process and returns what it printed.
    @discardableResult
    func stop() -> String {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return "--- stdout\n" + output.wait() + "\n--- stderr\n" + errors.wait()
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}
