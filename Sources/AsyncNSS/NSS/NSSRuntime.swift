internal import CNSS
import Synchronization

/// The process-wide NSS and NSPR runtime: initialisation and cleanup.
///
/// AsyncNSS initialises NSS on first use, so calling ``initialize(_:)`` is
/// optional; call it to choose the session-cache sizes before the first server
/// handshake. ``shutdown()`` closes every listener and connection, stops the
/// poll threads and tears NSS down. The runtime can be initialised again later.
///
/// - Important: Identities loaded before a shutdown are released by it; load
///   them again afterwards.
public enum NSSRuntime {
    /// Settings that apply to the whole process.
    public struct Options: Sendable, Hashable {
        /// Entries in the server session-ID cache (TLS 1.2 resumption). Zero picks NSS's default.
        public var serverSessionCacheEntries: Int = 0
        /// How long a cached TLS 1.2 session or TLS 1.3 ticket stays valid.
        public var sessionLifetime: Duration = .seconds(24 * 60 * 60)
        /// Where the server session cache lives: in this process (the
        /// default); in shared memory that the worker processes this process
        /// starts with a ``WorkerLauncher`` share; or, in such a worker, the
        /// parent's. See ``ServerSessionCache``.
        public var serverSessionCache: ServerSessionCache = .process
        /// Threads for blocking calls: name resolution, databases, PKCS#11 modules.
        public var blockingThreads: Int = 2
        /// Threads that wait in `PR_Poll` for socket readiness.
        ///
        /// The *hot* threads are the event loops: each socket belongs to one
        /// of them (round robin) for life, and its connection runs there.
        /// `PR_Poll` costs O(n) per call, so a read or write wait still
        /// pending after about a second (a quarter of a second on a busy
        /// thread) moves to a *cold* thread, which holds
        /// the idle sockets and is rarely woken. With k ≥ 2 there are k − 1
        /// hot threads and one cold thread; 1 is a single thread that polls
        /// and runs everything; zero picks the default: one hot thread per
        /// core this process can use (``NSSRuntime/usableCores``), and one
        /// cold thread.
        public var pollThreads: Int = 0

        /// The defaults.
        public init() {}
    }

    /// Initialises NSS, NSPR, the session caches and the poll threads, if that
    /// has not happened yet. Safe to call from any thread, any number of times;
    /// `options` apply only to the call that initialises.
    public static func initialize(_ options: Options = Options()) throws {
        _ = try Runtime.shared.services(options)
    }

    /// The cores this process can keep busy: the CPUs it may run on
    /// (`taskset`, cpusets) or the CPU quota of its cgroup or of one above it
    /// (a container, a systemd service or its slice) rounded up, whichever
    /// is less. The default ``Options/pollThreads`` starts one event
    /// loop per usable core. Reads `/proc` and the cgroup files each time.
    public static var usableCores: Int { UsableCores.count() }

    /// Whether the runtime is initialised.
    public static var isInitialized: Bool {
        Runtime.shared.isRunning
    }

    /// Closes every listener and connection, stops the poll threads, clears the
    /// session caches and shuts NSS down.
    ///
    /// Throws if NSS reports that something still holds NSS objects
    /// (`SEC_ERROR_BUSY`); NSS is torn down all the same.
    public static func shutdown() async throws {
        try await Runtime.shared.shutdown()
    }
}

/// The running runtime's shared parts.
final class RuntimeServices: Sendable {
    let pollGroup: PollGroup
    let blockingPool: BlockingPool
    let resources: ResourceRegistry
    /// Databases and modules opened on demand; see ``TokenModules``.
    let modules: TokenModules
    /// Early data's anti-replay contexts.
    let antiReplay = AntiReplayContexts()

    /// Where this runtime's server session cache lives.
    let serverSessionCache: NSSRuntime.ServerSessionCache

    init(pollGroup: PollGroup, blockingPool: BlockingPool, serverSessionCache: NSSRuntime.ServerSessionCache = .process) {
        self.pollGroup = pollGroup
        self.blockingPool = blockingPool
        self.serverSessionCache = serverSessionCache
        self.resources = ResourceRegistry()
        self.modules = TokenModules()
    }
}

/// The one runtime of the process.
final class Runtime: Sendable {
    static let shared = Runtime()

    private enum State {
        case stopped
        case running(RuntimeServices, NSSContextHandle)
    }

    private let state = Mutex<State>(.stopped)
    /// Serialises initialisation and shutdown without blocking `services` callers on an await.
    private let transition = Mutex<Void>(())

    var isRunning: Bool {
        state.withLock { if case .running = $0 { true } else { false } }
    }

    /// The running services, initialising the runtime first if needed.
    func services(_ options: NSSRuntime.Options = .init()) throws -> RuntimeServices {
        if case .running(let services, _) = state.withLock({ $0 }) {
            return services
        }
        return try transition.withLock { _ in
            if case .running(let services, _) = state.withLock({ $0 }) {
                return services
            }
            let context = try NSSContextHandle.open(options)
            let pollGroup: PollGroup
            do {
                pollGroup = try PollGroup(threads: options.pollThreads > 0 ? options.pollThreads : PollGroup.automaticThreadCount)
            } catch {
                try? context.close()
                throw error
            }
            let services = RuntimeServices(pollGroup: pollGroup, blockingPool: BlockingPool(threadCount: max(1, options.blockingThreads)), serverSessionCache: options.serverSessionCache)
            state.withLock { $0 = .running(services, context) }
            return services
        }
    }

    func shutdown() async throws {
        let taken = state.withLock { state -> (RuntimeServices, NSSContextHandle)? in
            guard case .running(let services, let context) = state else { return nil }
            state = .stopped
            return (services, context)
        }
        guard let (services, context) = taken else { return }
        await services.resources.releaseAll()
        services.antiReplay.releaseAll()
        services.pollGroup.shutdown()
        services.modules.closeAll()
        services.blockingPool.shutdown()
        try transition.withLock { _ in
            try context.close()
        }
    }
}

/// NSS's reference-counted init context, plus the process-wide settings that
/// go with it.
// @unchecked Sendable: the pointer is an opaque token that is only passed
// back to NSS_ShutdownContext, once, under `Runtime.transition`.
struct NSSContextHandle: @unchecked Sendable {
    let context: OpaquePointer

    static func open(_ options: NSSRuntime.Options) throws -> NSSContextHandle {
        // Not NSS_INIT_OPTIMIZESPACE: it gives softoken 32 hash buckets for
        // sessions and session objects and one lock for all sessions, so every
        // key lookup walks chains that grow with the number of live
        // connections (at 10,000 connections those walks were 54 % of the
        // server's CPU and 94 % of the client's). Without it: 1,024 buckets,
        // one lock per bucket.
        let flags = PRUint32(NSS_INIT_READONLY | NSS_INIT_NOCERTDB | NSS_INIT_NOMODDB | NSS_INIT_FORCEOPEN | NSS_INIT_NOROOTINIT)
        guard let context = NSS_InitContext("", "", "", "", nil, flags) else {
            throw TLSError.fromLastNSSError("initialising NSS")
        }
        guard NSS_SetDomesticPolicy() == SECSuccess else {
            let error = TLSError.fromLastNSSError("setting the NSS cipher policy")
            NSS_ShutdownContext(context)
            throw error
        }
        PK11_SetPasswordFunc(passwordCallback)
        // Gotcha 3: a TLS 1.2 server without a configured session-ID cache
        // crashes on its first full handshake. Configure it before any socket exists.
        do {
            try configureServerSessionCache(options)
        } catch {
            NSS_ShutdownContext(context)
            throw error
        }
        return NSSContextHandle(context: context)
    }

    private static func configureServerSessionCache(_ options: NSSRuntime.Options) throws {
        let operation = "configuring the server session cache"
        let lifetime = PRUint32(clamping: options.sessionLifetime.components.seconds)
        let entries = Int32(clamping: options.serverSessionCacheEntries)
        switch options.serverSessionCache {
        case .process:
            guard SSL_ConfigServerSessionIDCache(entries, lifetime, lifetime, nil) == SECSuccess else {
                throw TLSError.fromLastNSSError(operation)
            }
        case .sharedWithWorkers:
            // Shared memory, which NSS names in the variable SSL_INHERITANCE
            // of this process, for the workers to inherit.
            guard SSL_ConfigMPServerSIDCache(entries, lifetime, lifetime, nil) == SECSuccess else {
                throw TLSError.fromLastNSSError(operation)
            }
        case .inheritedFromParent:
            guard WorkerEnvironment.isWorker else {
                throw TLSError(kind: .invalidConfiguration, operation: operation, message: "this process was not started by a WorkerLauncher, so it has no parent's session cache to inherit")
            }
            guard SSL_InheritMPServerSIDCache(nil) == SECSuccess else {
                throw TLSError.fromLastNSSError(operation)
            }
            try SessionTicketKeyPair.install(try WorkerEnvironment.readTicketKey())
        }
    }

    /// Clears the session caches and shuts this NSS context down.
    func close() throws {
        SSL_ShutdownServerSessionIDCache()
        SSL_ClearSessionCache()
        if NSS_ShutdownContext(context) != SECSuccess {
            throw TLSError.fromLastNSSError("shutting NSS down")
        }
    }
}

extension NSSRuntime {
    /// Where a server's session cache lives (``Options/serverSessionCache``):
    /// TLS 1.2 sessions, and the keys of the tickets that TLS 1.3 (and
    /// TLS 1.2) clients resume with.
    public enum ServerSessionCache: Sendable, Hashable {
        /// In this process (the default).
        case process
        /// In shared memory, for the worker processes that this process
        /// starts with a ``WorkerLauncher``: a session made by one worker
        /// resumes on any other (`SSL_ConfigMPServerSIDCache`).
        case sharedWithWorkers
        /// The cache of the parent that started this worker process
        /// (`SSL_InheritMPServerSIDCache`). Only for a process that a
        /// ``WorkerLauncher`` started.
        case inheritedFromParent
    }
}
