import AsyncNSS
import Benchmark

/// Handshakes over loopback, client and server both in this process: one
/// connect per iteration, then the client reads until the server's
/// close_notify (which also consumes TLS 1.3 tickets) and closes.
enum Handshakes {
    static func register() {
        for version in [TLSVersion.tls13, .tls12] {
            for resumed in [false, true] {
                registerOne(version: version, resumed: resumed)
            }
        }
    }

    private static func registerOne(version: TLSVersion, resumed: Bool) {
        let fixture = Fixture<LoopbackServer>()
        // No spaces: ordo-one/benchmark 1.38.1 writes threshold files with '_'
        // for ' ' but looks them up with the name as it is.
        let name = "Handshake-\(version == .tls13 ? "TLS1.3" : "TLS1.2")-\(resumed ? "resumed" : "full")"
        Benchmark(
            name,
            configuration: .init(
                metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal],
                maxDuration: .seconds(5),
                maxIterations: 2000,
                // Only allocation counts are checked: timings vary too much on shared machines.
                thresholds: [.mallocCountTotal: .init(relative: [.p90: 3], absolute: [.p90: 40])],
                setup: {
                    NSSRuntime.clearClientSessionCache()
                    let server = try await LoopbackServer.start(.closeAtOnce, version: version)
                    fixture.set(server)
                    // Prime the session cache, and check resumption really happens.
                    try await handshake(server)
                    let second = try await handshake(server)
                    if resumed, !second {
                        throw BenchmarkSetupError(message: "\(name): the second connection was not resumed")
                    }
                },
                teardown: {
                    await fixture.take()?.stop()
                    NSSRuntime.clearClientSessionCache()
                }
            )
        ) { benchmark in
            let server = fixture.value
            for _ in benchmark.scaledIterations {
                if !resumed { NSSRuntime.clearClientSessionCache() }
                try await handshake(server)
            }
        }
    }

    /// One handshake and close; returns whether the session was resumed.
    @discardableResult
    static func handshake(_ server: LoopbackServer) async throws -> Bool {
        let connection = try await server.connect()
        let resumed = connection.info.resumed
        while try await connection.receive() != nil {}
        await connection.close()
        return resumed
    }
}

struct BenchmarkSetupError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
