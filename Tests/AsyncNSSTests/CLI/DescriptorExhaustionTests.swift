import AsyncNSS
import Foundation
import Testing

extension Integration {
    @Suite("nss-tls serve out of file descriptors")
    struct DescriptorExhaustionTests {
        /// serve's `RLIMIT_NOFILE`.
        static let limit = 64

        @Test("with RLIMIT_NOFILE lowered, serve logs EMFILE, backs off, and serves again once descriptors are free")
        func acceptBacksOff() async throws {
            try await withTimeout(seconds: 90) {
                // A shell lowers the limit for serve alone, not for the tests.
                let process = try StreamingChild(executable: "/bin/sh", ["-c", "ulimit -n \(Self.limit) && exec '\(ToolRun.binary)' serve --port 0"], input: [])
                guard let line = await process.stdout.waitForLine(seconds: 30, where: { $0.hasPrefix(ServeProcess.announcement) }),
                      let port = Int(line.split(separator: ":").last ?? "") else {
                    await process.kill()
                    Issue.record("serve did not start: \(process.transcript)")
                    return
                }
                // Plain TCP connections that never speak TLS use up the rest.
                let hogs = try await onOwnThread { try (0..<(Self.limit + 16)).map { _ in try RawTCP(port: port) } }
                let warning = await process.stderr.waitForLine(seconds: 15) { $0.contains("accept failed, backing off") }
                #expect(warning != nil, "\(process.transcript)")
                #expect(warning?.contains("PR_PROC_DESC_TABLE_FULL_ERROR") == true || warning?.contains("PR_INSUFFICIENT_RESOURCES_ERROR") == true, "\(warning ?? "")")
                // Out of descriptors for a while: libdispatch aborts a process
                // whose table stays full (its thread-pool monitor must open
                // /proc files), unless the acceptor gives its reserve back and
                // nothing takes that slot. Sampled ten times over 2 s, the
                // table must have a free slot: full, at most, for the two
                // system calls of a reclaim probe.
                var samplesWithRoom = 0
                for _ in 0..<10 {
                    if try DescriptorTable.countBelow(Self.limit, pid: process.pid) < Self.limit { samplesWithRoom += 1 }
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(samplesWithRoom >= 8, "serve's descriptor table stayed full: \(samplesWithRoom) of 10 samples had a free slot")
                #expect(await process.exitStatus(within: 0.1) == nil, "serve died while out of descriptors: \(process.transcript)")
                for hog in hogs { hog.close() }

                // The listener goes on: a TLS client is served.
                let output = try await ToolRun.run(["connect", "127.0.0.1:\(port)", "--insecure"], input: "still serving\n", timeout: 30)
                #expect(output.status == 0, "\(output)")
                #expect(output.stdout.contains("still serving"), "\(output)")
                #expect(await process.stop() == 0, "\(process.transcript)")
            }
        }
    }
}

/// The descriptors a process has open, read from `/proc/PID/fd`.
enum DescriptorTable {
    /// How many of its open descriptors are numbered below `limit`: the slots
    /// `RLIMIT_NOFILE` = `limit` lets it use (descriptors it inherited may be
    /// numbered higher).
    static func countBelow(_ limit: Int, pid: pid_t) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")
            .compactMap(Int.init)
            .filter { $0 < limit }
            .count
    }
}
