internal import CNSS
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The parent of a multi-process server: it holds the listening socket and
/// starts worker processes that accept on it and share one session cache.
///
/// The parent starts the runtime with
/// ``NSSRuntime/ServerSessionCache/sharedWithWorkers``, binds here, and
/// launches the workers: new processes of an executable (usually its own,
/// with arguments that make it a worker), never a `fork` of a process that
/// runs Swift concurrency. Each worker starts the runtime with
/// ``NSSRuntime/ServerSessionCache/inheritedFromParent`` and accepts with
/// ``TLSListener/inheritedFromParent(configuration:logger:metrics:)``. A TLS
/// 1.2 session or a TLS 1.3 ticket made by one worker then resumes on any
/// other.
///
/// Each worker gets the listening socket as descriptor 3 and, through a pipe
/// on descriptor 4, the key pair that wraps the shared ticket keys (see
/// `SessionTicketKeyPair`); `ASYNCNSS_WORKER` tells it so, and NSS's
/// `SSL_INHERITANCE` names the shared cache.
public final class WorkerLauncher: Sendable {
    /// The address the socket is bound to.
    public let localAddress: String
    /// The bound port; the one the system chose when binding port 0.
    public let port: Int
    private let socket: SocketHandle
    private let services: RuntimeServices
    /// The PKCS#8 DER of the ticket key pair's private key.
    private let ticketKey: [UInt8]

    private init(socket: SocketHandle, services: RuntimeServices, address: NetworkAddress, ticketKey: [UInt8]) {
        self.socket = socket
        self.services = services
        self.localAddress = address.description
        self.port = Int(address.port)
        self.ticketKey = ticketKey
    }

    /// Binds to `host:port` (port 0 picks a free port) and listens, and makes
    /// the ticket key pair the workers will share.
    ///
    /// - Throws: ``TLSError/Kind/invalidConfiguration`` unless the runtime
    ///   runs with ``NSSRuntime/ServerSessionCache/sharedWithWorkers``.
    public static func bind(host: String = "127.0.0.1", port: Int, backlog: Int = 1024) async throws -> WorkerLauncher {
        let operation = "listening on \(host):\(port) for worker processes"
        let port = try NetworkAddress.port(port, operation)
        let services = try Runtime.shared.services()
        guard services.serverSessionCache == .sharedWithWorkers else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "start the runtime with NSSRuntime.Options.serverSessionCache = .sharedWithWorkers first, so that the workers share one session cache")
        }
        guard let address = try await NetworkAddress.resolve(host, port: port, services: services).first else {
            throw TLSError(kind: .nameResolution, operation: operation, message: "no addresses")
        }
        let ticketKey = try await services.blockingPool.run { try SessionTicketKeyPair.generateDER() }
        // Close-on-exec, as every socket AsyncNSS opens: workers get their
        // copy as descriptor 3 (see `spawnWorker`), and this one stays out of them.
        let (socket, bound) = try ListeningSocket.open(address, backlog: backlog, services: services, operation: operation)
        return WorkerLauncher(socket: socket, services: services, address: bound, ticketKey: ticketKey)
    }

    /// The path of this process's executable.
    public static var currentExecutable: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments.first ?? "" }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether this process is a worker that a launcher started.
    public static var isWorker: Bool { WorkerEnvironment.isWorker }

    /// Starts a worker: `executable` (this process's by default) with
    /// `arguments`, the listening socket and the session cache. Signals it
    /// does not handle have their default action in the worker. The spawn
    /// runs on the blocking pool.
    public func launch(executable: String = WorkerLauncher.currentExecutable, arguments: [String]) async throws -> WorkerProcess {
        let pid = try await services.blockingPool.run { [self] in try spawnWorker(executable, arguments: arguments) }
        return WorkerProcess(pid: pid)
    }

    private func spawnWorker(_ executable: String, arguments: [String]) throws -> pid_t {
        let operation = "starting worker \(executable)"
        let listening = try socket.withFD(operation) { PR_FileDesc2NativeHandle($0) }
        // The key goes into the pipe first: about 1.2 KB, which the pipe
        // holds, and no SIGPIPE even if the worker dies at once.
        // Close-on-exec from the start: the other slots launch on the other
        // threads of the blocking pool, and a worker spawned between this
        // pipe(2) and the close below would otherwise inherit the write end
        // and keep this worker's pipe from ever reaching its end.
        var ends: [Int32] = [-1, -1]
        guard cnss_pipe_cloexec(&ends) == 0 else {
            throw TLSError(kind: .runtime, operation: operation, message: "pipe2(2) failed with errno \(errno)")
        }
        var written = 0
        while written < ticketKey.count {
            let count = ticketKey[written...].withUnsafeBytes { write(ends[1], $0.baseAddress, $0.count) }
            if count > 0 { written += count } else if errno != EINTR { break }
        }
        Glibc.close(ends[1])
        // Both above the descriptors the worker gets them as, so that placing
        // one cannot overwrite the other; close-on-exec, so that no other
        // child inherits them.
        let keyRead = fcntl(ends[0], F_DUPFD_CLOEXEC, 10)
        Glibc.close(ends[0])
        let listeningCopy = fcntl(listening, F_DUPFD_CLOEXEC, 10)
        defer {
            if keyRead >= 0 { Glibc.close(keyRead) }
            if listeningCopy >= 0 { Glibc.close(listeningCopy) }
        }
        guard written == ticketKey.count, keyRead >= 0, listeningCopy >= 0 else {
            throw TLSError(kind: .runtime, operation: operation, message: "could not prepare the worker's descriptors (errno \(errno))")
        }
        return try Self.spawn(executable, arguments: arguments, listening: listeningCopy, ticketKey: keyRead)
    }

    private static func spawn(_ executable: String, arguments: [String], listening: Int32, ticketKey: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, listening, WorkerEnvironment.listeningDescriptor)
        posix_spawn_file_actions_adddup2(&actions, ticketKey, WorkerEnvironment.ticketKeyDescriptor)
        // The parent may block or ignore signals (a server that traps them
        // does); the worker starts with none blocked and the usual actions.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var environment: [UnsafeMutablePointer<CChar>?] = []
        var entry = environ
        while let variable = entry.pointee {
            if !String(cString: variable).hasPrefix(WorkerEnvironment.variable + "=") { environment.append(strdup(variable)) }
            entry += 1
        }
        environment.append(strdup("\(WorkerEnvironment.variable)=\(WorkerEnvironment.value)"))
        environment.append(nil)
        defer { environment.forEach { free($0) } }

        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environment)
        guard status == 0 else {
            throw TLSError(kind: .runtime, operation: "starting worker \(executable)", message: "posix_spawn failed with errno \(status)")
        }
        return pid
    }

    /// Stops listening in this process. Workers keep their copies.
    public func close() async {
        await socket.close()
    }
}
