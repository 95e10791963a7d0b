import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started by ``Spawn/start(executable:arguments:closeStandardInput:)``,
/// with the parent's ends of its standard streams.
struct SpawnedChild {
    let pid: pid_t
    /// Write end of the child's standard input, or -1 when it has none.
    let standardInput: Int32
    let standardOutput: Int32
    let standardError: Int32
}

/// posix_spawn with pipes for standard input, output and error.
enum Spawn {
    /// Writing to a child that already exited must fail with EPIPE, not kill
    /// the test process; children get SIGPIPE's default back (see below).
    private static let ignoreBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    static func start(executable: String, arguments: [String], closeStandardInput: Bool = false) throws -> SpawnedChild {
        _ = ignoreBrokenPipes
        var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        guard pipe(&inPipe) == 0, pipe(&outPipe) == 0, pipe(&errPipe) == 0 else {
            for fd in inPipe + outPipe + errPipe where fd >= 0 { close(fd) }
            throw POSIXError(.EMFILE)
        }
        // Close-on-exec, so other children do not inherit (and hold open) these
        // pipes; dup2 clears the flag on 0, 1 and 2.
        for fd in inPipe + outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if closeStandardInput {
            posix_spawn_file_actions_addclose(&actions, 0)
        } else {
            posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // Threads of the test process block signals; a child inheriting that
        // mask (or ignored dispositions) would ignore SIGTERM.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var child: pid_t = 0
        let spawned = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
        guard spawned == 0 else {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EIO)
        }
        if closeStandardInput { close(inPipe[1]) }
        return SpawnedChild(pid: child, standardInput: closeStandardInput ? -1 : inPipe[1], standardOutput: outPipe[0], standardError: errPipe[0])
    }
}

/// Reads `fd` until end of file or an error, handing each chunk to `chunk`,
/// then closes it. Blocking: call it on a thread of its own.
func drain(_ fd: Int32, _ chunk: (ArraySlice<UInt8>) -> Void) {
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0, errno == EINTR { continue }
        if count <= 0 { break }
        chunk(buffer[0..<count])
    }
    close(fd)
}
