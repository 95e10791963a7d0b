import Logging

/// The one log of the tool: swift-log's stream handler on standard error,
/// label `nss-tls`. The library's listener logs failed handshakes through it.
enum CommandLogging {
    /// Bootstraps swift-log exactly once, however often it is asked.
    private static let bootstrapped: Void = {
        LoggingSystem.bootstrap { label in StreamLogHandler.standardError(label: label) }
    }()

    /// The logger for `level`, bootstrapping the logging system on first use.
    static func logger(level: Logger.Level = .info) -> Logger {
        _ = bootstrapped
        var logger = Logger(label: "nss-tls")
        logger.logLevel = level
        return logger
    }
}
