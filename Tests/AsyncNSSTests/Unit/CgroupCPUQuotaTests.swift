import Testing
@testable import AsyncNSS

/// The CPU quota that limits a process: found through `/proc/PID/cgroup` and
/// `/proc/PID/mountinfo`, on its own cgroup or any cgroup above it. These read
/// from a table of files; `CgroupQuotaTests` uses the real cgroup file system.
@Suite("CgroupCPUQuota: the tightest quota on the cgroup's path")
struct CgroupCPUQuotaTests {
    /// A host with cgroup v2 at /sys/fs/cgroup, as systemd sets it up.
    static let unifiedMountInfo = """
        22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
        25 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw
        30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot

        """

    /// A hybrid host: v1 controllers, `cpu` mounted together with `cpuacct`,
    /// and an empty v2 hierarchy beside them.
    static let hybridMountInfo = """
        31 23 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
        32 31 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
        35 31 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
        36 31 0:33 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
        37 31 0:34 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,cpuset

        """

    static func quota(cgroups: String, mountInfo: String, files: [String: String]) -> Int? {
        CgroupCPUQuota.cores(cgroups: cgroups, mounts: CgroupCPUQuota.mounts(inMountInfo: mountInfo)) { files[$0] }
    }

    @Test("v2: a systemd service's own quota (CPUQuota=150%) is two cores")
    func serviceQuota() {
        let files = [
            "/sys/fs/cgroup/system.slice/app.service/cpu.max": "150000 100000\n",
            "/sys/fs/cgroup/system.slice/cpu.max": "max 100000\n",
        ]
        #expect(Self.quota(cgroups: "0::/system.slice/app.service\n", mountInfo: Self.unifiedMountInfo, files: files) == 2)
    }

    @Test("v2: a quota on the slice above the service limits it too")
    func ancestorQuota() {
        let files = [
            "/sys/fs/cgroup/app.slice/app.service/cpu.max": "max 100000\n",
            "/sys/fs/cgroup/app.slice/cpu.max": "100000 100000\n",
        ]
        #expect(Self.quota(cgroups: "0::/app.slice/app.service\n", mountInfo: Self.unifiedMountInfo, files: files) == 1)
    }

    @Test("v2: of several quotas on the path, the tightest wins")
    func tightest() {
        let files = [
            "/sys/fs/cgroup/a/b/c/cpu.max": "800000 100000\n",
            "/sys/fs/cgroup/a/b/cpu.max": "250000 100000\n",
            "/sys/fs/cgroup/a/cpu.max": "400000 100000\n",
        ]
        #expect(Self.quota(cgroups: "0::/a/b/c\n", mountInfo: Self.unifiedMountInfo, files: files) == 3)
    }

    @Test("v2 in a cgroup namespace: the container's cgroup is the mount's top")
    func namespacedContainer() {
        let files = ["/sys/fs/cgroup/cpu.max": "200000 100000\n"]
        #expect(Self.quota(cgroups: "0::/\n", mountInfo: Self.unifiedMountInfo, files: files) == 2)
    }

    @Test("v1 on a hybrid host: the cpu,cpuacct mount, and nothing from the v2 or other v1 mounts")
    func hybridVersionOne() {
        let cgroups = """
            12:memory:/user.slice/user-0.slice/session-1.scope
            4:cpu,cpuacct:/user.slice/user-0.slice
            3:cpuset:/
            0::/user.slice/user-0.slice/session-1.scope

            """
        let files = [
            "/sys/fs/cgroup/cpu,cpuacct/user.slice/user-0.slice/cpu.cfs_quota_us": "-1\n",
            "/sys/fs/cgroup/cpu,cpuacct/user.slice/user-0.slice/cpu.cfs_period_us": "100000\n",
            "/sys/fs/cgroup/cpu,cpuacct/user.slice/cpu.cfs_quota_us": "300000\n",
            "/sys/fs/cgroup/cpu,cpuacct/user.slice/cpu.cfs_period_us": "100000\n",
            // Not a cpu hierarchy: never read.
            "/sys/fs/cgroup/memory/user.slice/cpu.cfs_quota_us": "100000\n",
            "/sys/fs/cgroup/memory/user.slice/cpu.cfs_period_us": "100000\n",
        ]
        #expect(Self.quota(cgroups: cgroups, mountInfo: Self.hybridMountInfo, files: files) == 3)
    }

    @Test("v1 container without a cgroup namespace: the mount's root is the container's cgroup")
    func versionOneContainer() {
        let mountInfo = "600 590 0:32 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
        let files = [
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "50000\n",
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        ]
        #expect(Self.quota(cgroups: "5:cpu,cpuacct:/docker/abc\n", mountInfo: mountInfo, files: files) == 1)
        // A cgroup outside what the mount shows has no directory to read.
        #expect(Self.quota(cgroups: "5:cpu,cpuacct:/elsewhere\n", mountInfo: mountInfo, files: files) == nil)
        #expect(Self.quota(cgroups: "5:cpu,cpuacct:/docker/abcdef\n", mountInfo: mountInfo, files: files) == nil)
    }

    @Test("no quota on the path, or no cgroup mounts at all, is no limit")
    func noLimit() {
        let files = ["/sys/fs/cgroup/system.slice/cpu.max": "max 100000\n"]
        #expect(Self.quota(cgroups: "0::/system.slice/app.service\n", mountInfo: Self.unifiedMountInfo, files: files) == nil)
        #expect(Self.quota(cgroups: "0::/\n", mountInfo: "25 1 259:1 / / rw - ext4 /dev/root rw\n", files: files) == nil)
    }

    @Test("without /proc, the conventional mount points are read")
    func withoutProc() {
        let files = ["/sys/fs/cgroup/cpu.max": "300000 100000\n"]
        #expect(CgroupCPUQuota.cores(pid: "self") { files[$0] } == 3)
        #expect(CgroupCPUQuota.cores(pid: "self") { _ in nil } == nil)
    }

    @Test("mountinfo: escaped mount points, optional fields, and lines that are not mounts")
    func mountInfoParsing() {
        let text = """
            40 31 0:37 / /mnt/cg\\040groups rw,relatime shared:1 master:2 - cgroup2 cgroup2 rw
            41 31 0:38 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
            42 31 0:39 /sub /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
            not a mount line
            43 31 0:40 / /x rw - cgroup

            """
        #expect(CgroupCPUQuota.mounts(inMountInfo: text) == [
            .init(version: .two, root: "/", mountPoint: "/mnt/cg groups"),
            .init(version: .one, root: "/sub", mountPoint: "/sys/fs/cgroup/cpu"),
        ])
    }

    @Test("the directories read go from the cgroup up to the mount point")
    func levels() {
        #expect(CgroupCPUQuota.directoryAndAncestors("/sys/fs/cgroup/a/b", upTo: "/sys/fs/cgroup")
            == ["/sys/fs/cgroup/a/b", "/sys/fs/cgroup/a", "/sys/fs/cgroup"])
        #expect(CgroupCPUQuota.directoryAndAncestors("/sys/fs/cgroup", upTo: "/sys/fs/cgroup") == ["/sys/fs/cgroup"])
    }

    @Test("cgroup v2 cpu.max: a quota rounds up to whole cores; max is no limit")
    func cgroup2() {
        #expect(CgroupCPUQuota.quotaCores(cgroup2CPUMax: "200000 100000\n") == 2)
        #expect(CgroupCPUQuota.quotaCores(cgroup2CPUMax: "150000 100000\n") == 2)
        #expect(CgroupCPUQuota.quotaCores(cgroup2CPUMax: "50000 100000\n") == 1)
        #expect(CgroupCPUQuota.quotaCores(cgroup2CPUMax: "max 100000\n") == nil)
        #expect(CgroupCPUQuota.quotaCores(cgroup2CPUMax: "") == nil)
    }

    @Test("cgroup v1 cfs quota and period: -1 is no limit")
    func cgroup1() {
        #expect(CgroupCPUQuota.quotaCores(quota: "400000\n", period: "100000\n") == 4)
        #expect(CgroupCPUQuota.quotaCores(quota: "-1\n", period: "100000\n") == nil)
        #expect(CgroupCPUQuota.quotaCores(quota: nil, period: nil) == nil)
        #expect(CgroupCPUQuota.quotaCores(quota: "100000", period: "0") == nil)
    }
}
