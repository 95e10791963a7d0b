import AsyncNSS
import Benchmark

/// 16 KiB writes over one loopback connection whose server side reads and
/// discards. One iteration of the inner loop is one write.
enum Writes {
    static let size = 16 * 1024

    static func register() {
        let fixture = Fixture<(server: LoopbackServer, connection: TLSConnection)>()
        let chunk = [UInt8](repeating: 0x61, count: size)
        Benchmark(
            "Write-16KiB",
            configuration: .init(
                metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal],
                scalingFactor: .kilo,
                maxDuration: .seconds(5),
                maxIterations: 200,
                // Only allocation counts are checked: timings vary too much on shared machines.
                thresholds: [.mallocCountTotal: .init(relative: [.p90: 5], absolute: [.p90: 200])],
                setup: {
                    let server = try await LoopbackServer.start(.drain)
                    fixture.set((server, try await server.connect()))
                },
                teardown: {
                    guard let (server, connection) = fixture.take() else { return }
                    await connection.close()
                    await server.stop()
                }
            )
        ) { benchmark in
            let connection = fixture.value.connection
            for _ in benchmark.scaledIterations {
                try await connection.write(chunk)
            }
        }
    }
}
