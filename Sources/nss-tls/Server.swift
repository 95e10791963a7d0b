import AsyncNSS
import Logging

/// The accept loop of `serve`: each connection is served in its own child
/// task, so a slow client never holds up the others.
struct Server {
    let listener: TLSListener
    let logger: Logger

    /// Serves until SIGINT or SIGTERM arrives (or the listener ends), then
    /// closes the listener and every connection.
    func run(until signals: SignalWatcher) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await acceptAll() }
            group.addTask {
                if let number = await signals.next() {
                    logger.notice("\(SignalWatcher.name(of: number)): closing the listener and every connection")
                }
            }
            await group.next()
            group.cancelAll()
        }
        logger.debug("closing the listener")
        await listener.close()
    }

    private func acceptAll() async {
        await withDiscardingTaskGroup { group in
            do {
                for try await connection in listener {
                    group.addTask { await ServeSession(connection: connection, logger: logger).run() }
                }
                logger.notice("the listener closed")
            } catch is CancellationError {
                // Shutting down: the group's child tasks are cancelled too.
            } catch {
                logger.error("accepting connections failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
