import ArgumentParser
import AsyncNSS
import Logging
import UnixSignals
#if canImport(Glibc)
import Glibc
#endif

/// `serve --workers N`: the parent process. It binds the port and starts N
/// workers (this executable, with the same arguments) that accept on it and
/// share one session cache; see ``WorkerSupervisor`` for how it keeps them.
struct ServeWorkers {
    let count: Int
    let host: String
    let port: Int
    let logger: Logger
    /// Builds the workers' configuration once, so that a mistake in the
    /// flags (a missing file, a wrong password) fails here, before any
    /// worker starts.
    let checkConfiguration: @Sendable () async throws -> TLSConfiguration

    func run() async throws {
        Signals.ignoreBrokenPipes()
        // Trapped before the address is announced, as in a single process.
        let shutdownSignals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let launcher: WorkerLauncher
        do {
            var options = NSSRuntime.Options()
            options.serverSessionCache = .sharedWithWorkers
            // The parent serves nothing: one loop is plenty.
            options.pollThreads = 1
            try NSSRuntime.initialize(options)
            _ = try await checkConfiguration()
            launcher = try await WorkerLauncher.bind(host: host, port: port)
        } catch {
            StandardOutput.printError("nss-tls: \(error)")
            try? await NSSRuntime.shutdown()
            throw ExitCode(1)
        }
        do {
            try StandardOutput.writeLine("nss-tls: listening on \(launcher.localAddress)")
        } catch {
            logger.warning("could not announce the address on standard output", metadata: ["error": "\(error)"])
        }
        let supervisor = WorkerSupervisor(launcher: launcher, count: count, arguments: Array(CommandLine.arguments.dropFirst()), logger: logger)
        let supervising = Task { await supervisor.run() }
        let reloading = Task {
            for await _ in hangups {
                logger.notice("SIGHUP: passed on to the workers")
                await supervisor.signalAll(SIGHUP)
            }
        }
        for await _ in shutdownSignals { break }
        logger.notice("stopping: the workers finish their connections")
        await supervisor.stop()
        // The workers hold their own copies of the socket while they drain;
        // once the last has closed its copy, the port refuses connections.
        await launcher.close()
        let clean = await supervising.value
        // Ended before the process exits, so that nothing still holds the
        // supervisor (and through it the launcher's socket) at exit.
        reloading.cancel()
        await reloading.value
        try? await NSSRuntime.shutdown()
        logger.debug("stopped")
        if !clean { throw ExitCode(1) }
    }
}

/// Keeps `count` worker processes running until ``stop()``: starts them, and
/// starts another when one exits (after a pause that grows while workers
/// die young, so that a worker that cannot start does not spin).
actor WorkerSupervisor {
    private let launcher: WorkerLauncher
    private let count: Int
    private let arguments: [String]
    private let logger: Logger
    private var running: [Int: WorkerProcess] = [:]
    private var stopping = false

    init(launcher: WorkerLauncher, count: Int, arguments: [String], logger: Logger) {
        self.launcher = launcher
        self.count = count
        self.arguments = arguments
        self.logger = logger
    }

    /// Runs until ``stop()`` and every worker has exited; returns whether
    /// they all exited cleanly.
    func run() async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            for slot in 0..<count {
                group.addTask { await self.keep(slot) }
            }
            var clean = true
            for await exitedCleanly in group { clean = clean && exitedCleanly }
            return clean
        }
    }

    /// Sends SIGTERM to every worker, and starts no more.
    func stop() {
        stopping = true
        signalAll(SIGTERM)
    }

    func signalAll(_ signal: Int32) {
        for worker in running.values { worker.signal(signal) }
    }

    /// The pause before starting the worker of a slot again, after `failures`
    /// workers in a row that lived less than ``youngDeath``.
    static func restartPause(afterFailures failures: Int) -> Duration {
        guard failures > 0 else { return .zero }
        return min(.milliseconds(100 << min(failures - 1, 6)), .seconds(5))
    }

    static let youngDeath: Duration = .seconds(5)

    /// Keeps slot `slot` filled; returns whether its last worker exited cleanly.
    private func keep(_ slot: Int) async -> Bool {
        var failures = 0
        while !stopping {
            let started = ContinuousClock.now
            let worker: WorkerProcess
            do {
                worker = try await launcher.launch(arguments: arguments)
            } catch {
                failures += 1
                logger.error("could not start a worker", metadata: ["slot": "\(slot)", "error": "\(error)"])
                try? await Task.sleep(for: Self.restartPause(afterFailures: failures))
                continue
            }
            running[slot] = worker
            logger.info("worker started", metadata: ["slot": "\(slot)", "pid": "\(worker.pid)"])
            // Not cancellable: the group ends only when the worker has.
            let status = (try? await worker.exitStatus()) ?? -1
            running[slot] = nil
            if stopping {
                // A worker that had not yet set up its signal handling ends by SIGTERM itself.
                let clean = status == 0 || status == 128 + SIGTERM
                if !clean { logger.warning("worker exited with status \(status) while stopping", metadata: ["slot": "\(slot)", "pid": "\(worker.pid)"]) }
                return clean
            }
            failures = ContinuousClock.now - started < Self.youngDeath ? failures + 1 : 0
            let pause = Self.restartPause(afterFailures: failures)
            logger.warning("worker exited with status \(status); starting another", metadata: ["slot": "\(slot)", "pid": "\(worker.pid)", "pause": "\(pause)"])
            try? await Task.sleep(for: pause)
        }
        return true
    }
}
