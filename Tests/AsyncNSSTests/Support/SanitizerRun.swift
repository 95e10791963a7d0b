import Foundation

/// Whether these tests run under a sanitizer (`scripts/sanitizers.sh` sets
/// `ASYNCNSS_SANITIZER`). Tests whose time there goes into starting
/// instrumented processes over and over run fewer rounds, or none when they
/// check only argument parsing, to keep CI under its limit.
enum SanitizerRun {
    static var isActive: Bool { ProcessInfo.processInfo.environment["ASYNCNSS_SANITIZER"] != nil }
}
