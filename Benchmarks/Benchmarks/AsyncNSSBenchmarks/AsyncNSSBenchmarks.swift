import Benchmark

/// The micro-benchmarks: `swift package benchmark` in Benchmarks/.
let benchmarks: @Sendable () -> Void = {
    Handshakes.register()
    Writes.register()
}
