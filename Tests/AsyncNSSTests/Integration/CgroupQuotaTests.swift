import Foundation
import Testing
@testable import AsyncNSS

/// The default number of event loops follows a CPU quota set on the
/// process's own cgroup or on one above it (a systemd service in its slice),
/// read from the real cgroup file system.
@Suite("CPU quota of a real cgroup", .enabled(if: TestCgroup.isAvailable, "needs a cgroup file system this process may write to (root)"))
struct CgroupQuotaTests {
    @Test("a quota on the parent cgroup limits a process in its child cgroup")
    func quotaOfAncestor() async throws {
        try await withTimeout(seconds: 30) {
            let cgroup = try TestCgroup.make(cores: 3, nested: true)
            defer { cgroup.remove() }
            let child = try ChildProcess("sh", Array(cgroup.launcher.dropFirst()) + ["/bin/sleep", "30"])
            defer { child.stop() }
            let deadline = ContinuousClock.now + .seconds(10)
            while !cgroup.contains(child.pid), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            try #require(cgroup.contains(child.pid), "the child never entered \(cgroup.directory)")
            let cores = CgroupCPUQuota.cores(pid: "\(child.pid)") { try? String(contentsOfFile: $0, encoding: .utf8) }
            #expect(cores == 3)
            // This process is outside the new cgroup: its quota does not apply here.
            #expect(CgroupCPUQuota.cores { try? String(contentsOfFile: $0, encoding: .utf8) } != 3)
        }
    }

    @Test("serve under a one-core quota on its parent cgroup starts one event loop")
    func serveUnderQuota() async throws {
        try await withTimeout(seconds: 60) {
            let cgroup = try TestCgroup.make(cores: 1, nested: true)
            defer { cgroup.remove() }
            let server = try await ServeProcess.start(launcher: cgroup.launcher)
            let inside = cgroup.contains(server.process.pid)
            let loops = ThreadCPU.names(prefix: "nss-poll-hot", process: "\(server.process.pid)")
            let status = await server.process.stop()
            #expect(inside, "serve did not run in \(cgroup.directory)")
            // On a machine of one core this holds anyway; CI's machines have two.
            #expect(loops == ["nss-poll-hot"], "\(loops); this process may use \(NSSRuntime.usableCores) cores")
            #expect(status == 0, "\(server.process.transcript)")
        }
    }
}
