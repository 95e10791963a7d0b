import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import AsyncNSS

/// A cgroup with a CPU quota, made under this process's own cgroup for one
/// test and removed by ``remove()``; optionally with a child cgroup without a
/// quota of its own, to show that a quota above a process limits it too.
///
/// It needs a cgroup file system this process may write to (root, as in CI):
/// v1's `cpu` controller, or v2 where this process's cgroup hands `cpu` to
/// its children. ``isAvailable`` tells.
struct TestCgroup {
    /// The cgroup with the quota.
    let limited: String
    /// The cgroup a process is put in: `limited`, or its child without a quota.
    let directory: String
    let version: CgroupCPUQuota.Mount.Version

    /// Whether a quota can be set here: one cgroup is made, limited and removed to find out.
    static let isAvailable: Bool = {
        guard let cgroup = try? make(cores: 1, nested: true) else { return false }
        return cgroup.remove()
    }()

    /// Makes a cgroup limited to `cores` (and, when `nested`, a child in it).
    static func make(cores: Int, nested: Bool) throws -> TestCgroup {
        let read = { (path: String) in try? String(contentsOfFile: path, encoding: .utf8) }
        guard let cgroups = read("/proc/self/cgroup"), let mountInfo = read("/proc/self/mountinfo") else { throw Unavailable() }
        for (mount, own) in CgroupCPUQuota.directories(cgroups: cgroups, mounts: CgroupCPUQuota.mounts(inMountInfo: mountInfo)) {
            if mount.version == .two, read(own + "/cgroup.subtree_control")?.split(whereSeparator: \.isWhitespace).contains("cpu") != true {
                continue
            }
            let limited = own + "/asyncnss-test-\(UUID().uuidString.prefix(8))"
            guard mkdir(limited, 0o755) == 0 else { continue }
            let quota = "\(cores * 100_000)"
            let written = mount.version == .two
                ? write(quota + " 100000", to: limited + "/cpu.max")
                : write("100000", to: limited + "/cpu.cfs_period_us") && write(quota, to: limited + "/cpu.cfs_quota_us")
            guard written else {
                rmdir(limited)
                continue
            }
            var directory = limited
            if nested {
                directory = limited + "/inner"
                guard mkdir(directory, 0o755) == 0 else {
                    rmdir(limited)
                    continue
                }
            }
            return TestCgroup(limited: limited, directory: directory, version: mount.version)
        }
        throw Unavailable()
    }

    /// A launcher for ``ServeProcess/start(_:port:launcher:)`` and the like:
    /// a shell that moves itself into ``directory`` and then runs its arguments.
    var launcher: [String] {
        ["/bin/sh", "-c", "echo $$ > '\(directory)/cgroup.procs' && exec \"$@\"", "sh"]
    }

    /// Whether process `pid` is in ``directory`` yet.
    func contains(_ pid: pid_t) -> Bool {
        guard let cgroups = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return false }
        // `/asyncnss-test-…` or `/asyncnss-test-…/inner`: the path below the process's former cgroup.
        let name = directory.dropFirst((limited as NSString).deletingLastPathComponent.count)
        return cgroups.split(separator: "\n").contains { $0.hasSuffix(name) }
    }

    /// Removes the cgroups once their processes are gone (waits up to 5 s
    /// for them to leave); whether both went.
    @discardableResult
    func remove() -> Bool {
        for _ in 0..<500 {
            if directory != limited { rmdir(directory) }
            if rmdir(limited) == 0 { return true }
            usleep(10_000)
        }
        return false
    }

    private static func write(_ text: String, to path: String) -> Bool {
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return text.utf8CString.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress, $0.count - 1) } == text.utf8.count
    }

    struct Unavailable: Error {}
}
