import Logging

extension TLSListener {
    /// Reloads the listener when one of `files` changes on disk: renewed
    /// certificates reach new handshakes without a restart, and open
    /// connections keep theirs.
    ///
    /// ```swift
    /// try await listener.reloadWhenFilesChange(["server.pem", "server.key"]) {
    ///     .makeServerConfiguration(identity: try await .pem(certificateChainFile: "server.pem", privateKeyFile: "server.key"))
    /// }
    /// ```
    ///
    /// It reloads once as it starts, so that a change made between loading
    /// the configuration and this call is not missed. Then every `interval` it
    /// compares each file's inode, size and modification time (through
    /// symbolic links) with what it saw last, on a thread the library owns.
    /// After a change it calls `makeConfiguration` and ``reload(_:)``. A reload that fails (a key written before its
    /// certificate, say) is logged at warning and the listener keeps its
    /// configuration; the next change tries again.
    ///
    /// Returns as soon as the listener closes; throws `CancellationError` when
    /// the task is cancelled.
    ///
    /// - Parameters:
    ///   - files: The files that `makeConfiguration` reads.
    ///   - interval: How often to look.
    ///   - makeConfiguration: Builds the configuration from the files.
    public nonisolated func reloadWhenFilesChange(
        _ files: [String],
        checkingEvery interval: Duration = .seconds(2),
        makeConfiguration: @Sendable () async throws -> TLSConfiguration
    ) async throws {
        let pool = services.blockingPool
        var seen: FileSnapshot?
        while await isAccepting {
            if seen != nil {
                // On the poll thread: the watch ends as soon as the listener closes.
                switch await listeningSocket.pause(for: interval) {
                case .elapsed: break
                case .closed: return
                case .cancelled: throw CancellationError()
                }
            }
            let now = try await pool.run { FileSnapshot.take(files) }
            let starting = seen == nil
            let changed = seen.map { now.changedPaths(since: $0) } ?? files
            // Taken before the files are read: a write that lands while they
            // are read shows up as another change next time.
            seen = now
            guard starting || !changed.isEmpty else { continue }
            do {
                try await reload(try await makeConfiguration())
                if starting {
                    logger.debug("watching files: reloaded the configuration once as the watch starts", metadata: ["files": "\(files)"])
                } else {
                    logger.notice("files changed: reloaded the configuration; new connections use it", metadata: ["files": "\(changed)"])
                }
            } catch let error as CancellationError {
                throw error
            } catch {
                logger.warning("files changed, but the reload failed; keeping the previous configuration", metadata: ["files": "\(changed)", "error": "\(error)"])
            }
        }
    }
}
