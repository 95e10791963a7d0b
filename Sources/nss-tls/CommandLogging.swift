import Glibc
import Logging

/// The one log of the tool: ``StandardErrorLogHandler``, label `nss-tls`.
/// The library's listener logs failed handshakes through it.
enum CommandLogging {
    /// Bootstraps swift-log exactly once, however often it is asked.
    private static let bootstrapped: Void = {
        // Every line is stamped with the local time. With TZ
        // unset, glibc's localtime_r stats /etc/localtime on every call, and
        // `serve` logs a line per connection; naming the same file in TZ
        // makes glibc read it once. (A changed /etc/localtime is then seen
        // only after a restart.) Set before any other thread looks at the
        // environment: both commands ask for their logger first.
        if getenv("TZ") == nil { setenv("TZ", ":/etc/localtime", 0) }
        LoggingSystem.bootstrap { label in StandardErrorLogHandler(label: label) }
    }()

    /// The logger for `level`, bootstrapping the logging system on first use.
    static func logger(level: Logger.Level = .info) -> Logger {
        _ = bootstrapped
        var logger = Logger(label: "nss-tls")
        logger.logLevel = level
        return logger
    }
}
