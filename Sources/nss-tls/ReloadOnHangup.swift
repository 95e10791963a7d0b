import AsyncNSS
import Logging
import ServiceLifecycle
import UnixSignals

/// Re-reads the identity files of `serve` on SIGHUP and applies them to new
/// handshakes; open connections keep theirs. A reload that fails is logged
/// and the listener goes on as it was.
struct ReloadOnHangup: Service {
    let listener: TLSListener
    /// SIGHUP, trapped by the caller before it announced the address.
    let hangups: UnixSignalsSequence
    let logger: Logger
    let makeConfiguration: @Sendable () async throws -> TLSConfiguration

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await _ in hangups {
                do {
                    try await listener.reload(try await makeConfiguration())
                    logger.notice("SIGHUP: reloaded the configuration; new connections use it")
                } catch {
                    logger.error("SIGHUP: reload failed, keeping the previous configuration", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
