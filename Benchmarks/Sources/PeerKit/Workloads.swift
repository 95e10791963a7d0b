import Foundation

/// The client workloads of the comparison, written once over ``LoadTarget``
/// so that both peers run exactly the same steps. Each prints one JSON line.
public enum Workloads {
    /// Echoes `totalBytes` each way over one connection and reports MiB/s.
    public static func bulk<Target: LoadTarget>(_ target: Target, totalBytes: Int, chunkSize: Int) async throws {
        let clock = ContinuousClock()
        let start = clock.now
        try await target.bulkEcho(totalBytes: totalBytes, chunkSize: chunkSize)
        let seconds = (clock.now - start).seconds
        ResultLine.print([
            "workload": "bulk", "bytes_each_way": totalBytes, "chunk": chunkSize,
            "seconds": seconds, "mib_per_s": Double(totalBytes) / 1_048_576 / seconds,
        ])
    }

    /// Opens `idle` connections that stay silent, then `active` connections
    /// that each make `rounds` echo round trips of `messageSize` bytes, and
    /// reports round-trip percentiles. With `serverPID`, also the server's
    /// RSS before and after the idle connections.
    public static func latency<Target: LoadTarget>(
        _ target: Target, idle: Int, active: Int, rounds: Int, messageSize: Int, serverPID: Int32?
    ) async throws {
        let rssBefore = try serverPID.map(ProcessStats.residentKiB)
        let clock = ContinuousClock()
        let openStart = clock.now
        let idleConnections = try await openMany(target, count: idle)
        let openSeconds = (clock.now - openStart).seconds
        // Idle means idle for a while: AsyncNSS moves a wait that stays
        // pending for 1 s to its cold poll thread, in batches at most 1 s
        // apart, so the last connections opened need up to 2 s to get there.
        // (Runs before 2026-11-29 16:00 UTC waited 1 s here.)
        try await Task.sleep(for: .seconds(3))
        let rssIdle = try serverPID.map(ProcessStats.residentKiB)
        let activeConnections = try await openMany(target, count: active)
        let message = [UInt8](repeating: 0x61, count: messageSize)
        // One warm-up round trip each, not counted.
        try await roundTrips(activeConnections, message: message, rounds: 1)
        let samples = try await roundTrips(activeConnections, message: message, rounds: rounds)
        let percentiles = Percentiles(samples)
        var fields: [String: any Sendable] = [
            "workload": "latency", "idle": idle, "active": active, "rounds": rounds, "message": messageSize,
            "samples": percentiles.count, "idle_open_seconds": openSeconds,
            "p50_us": percentiles.value(50), "p99_us": percentiles.value(99),
        ]
        if let rssBefore, let rssIdle {
            fields["rss_before_kib"] = rssBefore
            fields["rss_idle_kib"] = rssIdle
            if idle > 0 { fields["rss_per_idle_kib"] = Double(rssIdle - rssBefore) / Double(idle) }
        }
        await closeAll(activeConnections + idleConnections)
        ResultLine.print(fields)
    }

    /// Holds `connections` idle connections for `seconds` and reports the
    /// CPU the server process `serverPID` used meanwhile, in percent of one core.
    public static func hold<Target: LoadTarget>(_ target: Target, connections: Int, seconds: Double, serverPID: Int32) async throws {
        let open = try await openMany(target, count: connections)
        try await Task.sleep(for: .seconds(2))
        let cpuBefore = try ProcessStats.cpuSeconds(serverPID)
        let clock = ContinuousClock()
        let start = clock.now
        try await Task.sleep(for: .seconds(seconds))
        let elapsed = (clock.now - start).seconds
        let cpuAfter = try ProcessStats.cpuSeconds(serverPID)
        await closeAll(open)
        ResultLine.print([
            "workload": "hold", "connections": connections, "seconds": elapsed,
            "server_cpu_seconds": cpuAfter - cpuBefore,
            "server_cpu_percent": (cpuAfter - cpuBefore) / elapsed * 100,
        ])
    }

    /// Sends `requests` HTTP requests on each of `connections` keep-alive
    /// connections to an HTTP-hello server and reports requests per second.
    public static func http<Target: LoadTarget>(_ target: Target, connections: Int, requests: Int) async throws {
        let open = try await openMany(target, count: connections)
        let request = HTTPHello.request
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for connection in open {
                group.addTask {
                    for _ in 0..<requests {
                        try await connection.exchange(request, expecting: HTTPHello.response.count)
                    }
                }
            }
            try await group.waitForAll()
        }
        let seconds = (clock.now - start).seconds
        await closeAll(open)
        ResultLine.print([
            "workload": "http", "connections": connections, "requests": requests * connections,
            "seconds": seconds, "requests_per_s": Double(requests * connections) / seconds,
        ])
    }

    /// Opens `count` connections, at most `parallel` handshakes at a time.
    static func openMany<Target: LoadTarget>(_ target: Target, count: Int, parallel: Int = 64) async throws -> [Target.Connection] {
        try await withThrowingTaskGroup(of: Target.Connection.self) { group in
            var opened: [Target.Connection] = []
            opened.reserveCapacity(count)
            var started = 0
            while started < min(parallel, count) {
                group.addTask { try await target.connect() }
                started += 1
            }
            while let connection = try await group.next() {
                opened.append(connection)
                if started < count {
                    group.addTask { try await target.connect() }
                    started += 1
                }
            }
            return opened
        }
    }

    /// Runs `rounds` round trips on every connection at once; returns each
    /// round trip's duration in microseconds.
    @discardableResult
    static func roundTrips<Connection: LoadConnection>(_ connections: [Connection], message: [UInt8], rounds: Int) async throws -> [Double] {
        try await withThrowingTaskGroup(of: [Double].self) { group in
            for connection in connections {
                group.addTask {
                    let clock = ContinuousClock()
                    var samples: [Double] = []
                    samples.reserveCapacity(rounds)
                    for _ in 0..<rounds {
                        let start = clock.now
                        try await connection.exchange(message, expecting: message.count)
                        samples.append((clock.now - start).seconds * 1_000_000)
                    }
                    return samples
                }
            }
            var all: [Double] = []
            for try await samples in group { all += samples }
            return all
        }
    }

    static func closeAll<Connection: LoadConnection>(_ connections: [Connection]) async {
        await withTaskGroup(of: Void.self) { group in
            for connection in connections {
                group.addTask { await connection.close() }
            }
        }
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
