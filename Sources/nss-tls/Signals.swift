#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Process-wide signal settings of the tool. SIGINT and SIGTERM are handled
/// by the service group of `serve` (graceful shutdown).
enum Signals {
    /// Makes writes to a closed socket or pipe fail with EPIPE instead of
    /// killing the process.
    static func ignoreBrokenPipes() {
        signal(SIGPIPE, SIG_IGN)
    }
}
