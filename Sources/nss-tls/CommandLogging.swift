import Glibc
import Logging

/// The one log of the tool: ``StandardErrorLogHandler``, label `nss-tls`,
/// on standard error through ``standardError``. The library's listener logs
/// failed handshakes through it.
enum CommandLogging {
    /// The writer of standard error. Its thread starts with the first line.
    static let standardError = LogLineWriter(descriptor: STDERR_FILENO) { count in
        StandardErrorLogHandler.line(level: .warning, label: "nss-tls", message: "\(count) log line\(count == 1 ? " was" : "s were") dropped: standard error did not keep up")
    }

    /// Bootstraps swift-log exactly once, however often it is asked.
    private static let bootstrapped: Void = {
        // Every line is stamped with the local time. With TZ
        // unset, glibc's localtime_r stats /etc/localtime on every call, and
        // `serve` logs a line per connection; naming the same file in TZ
        // makes glibc read it once. (A changed /etc/localtime is then seen
        // only after a restart.) Set before any other thread looks at the
        // environment: both commands ask for their logger first.
        if getenv("TZ") == nil { setenv("TZ", ":/etc/localtime", 0) }
        // Without a standard error (started with `2>&-`), lines go nowhere:
        // descriptor 2 may be another file.
        let output: StandardErrorLogHandler.Output = StandardDescriptors.errorIsStream ? .writer(standardError) : .discarded
        LoggingSystem.bootstrap { label in StandardErrorLogHandler(label: label, output: output) }
    }()

    /// The logger for `level`, bootstrapping the logging system on first use.
    static func logger(level: Logger.Level = .info) -> Logger {
        _ = bootstrapped
        var logger = Logger(label: "nss-tls")
        logger.logLevel = level
        return logger
    }

    /// Writes the lines logged so far (waiting up to two seconds for
    /// standard error to take them): before the process exits, and before
    /// anything else is written to standard error.
    static func flush() {
        standardError.flush()
    }
}
