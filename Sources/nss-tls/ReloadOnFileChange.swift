import AsyncNSS
import ServiceLifecycle

/// `serve --reload-on-change`: watches the files the configuration is read
/// from and applies them to new handshakes when one changes; see
/// ``AsyncNSS/TLSListener/reloadWhenFilesChange(_:checkingEvery:makeConfiguration:)``.
struct ReloadOnFileChange: Service {
    let listener: TLSListener
    let files: [String]
    let makeConfiguration: @Sendable () async throws -> TLSConfiguration

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            do {
                try await listener.reloadWhenFilesChange(files, makeConfiguration: makeConfiguration)
            } catch is CancellationError {
                // Graceful shutdown.
            }
        }
    }
}
