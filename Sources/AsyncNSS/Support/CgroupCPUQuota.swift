/// The CPU quota of a process's own cgroup and of its ancestors, in whole
/// cores: the tightest of them, rounded up.
///
/// A quota can sit anywhere on the path: on a container's cgroup, where
/// `/sys/fs/cgroup` is the container's own, but also on a systemd service
/// (`CPUQuota=150%` makes `…/system.slice/app.service/cpu.max`) or on the
/// slice above it, where `/sys/fs/cgroup` is the whole machine's. So the
/// process's cgroup is looked up in `/proc/PID/cgroup`, found under the
/// mounts of `/proc/PID/mountinfo` (cgroup v2, or v1's `cpu` controller, as in
/// hybrid setups where both are mounted), and every directory from there up
/// to the mount is read.
enum CgroupCPUQuota {
    /// A mounted cgroup hierarchy that can hold a CPU quota.
    struct Mount: Equatable {
        enum Version: Equatable {
            /// Unified: `cpu.max`.
            case two
            /// cgroup v1 with the `cpu` controller: `cpu.cfs_quota_us` and `cpu.cfs_period_us`.
            case one
        }

        var version: Version
        /// The cgroup that the mount shows at its mount point (`/` unless the
        /// mount is of a sub-tree, as a container without a cgroup namespace sees).
        var root: String
        var mountPoint: String

        /// The mount point without a trailing slash, to which cgroup paths are appended.
        var top: String { mountPoint.hasSuffix("/") ? String(mountPoint.dropLast()) : mountPoint }
    }

    /// The quota of process `pid` (`self` for this one), read from `/proc` and
    /// the cgroup file systems, or nil when no cgroup on its path has one.
    static func cores(pid: String = "self", read: (String) -> String?) -> Int? {
        guard let cgroups = read("/proc/\(pid)/cgroup"), let mountInfo = read("/proc/\(pid)/mountinfo") else {
            // No /proc to read: the places where a container sees its own cgroup.
            return cores(cgroups: "0::/\n1:cpu:/\n", mounts: conventionalMounts, read: read)
        }
        return cores(cgroups: cgroups, mounts: mounts(inMountInfo: mountInfo), read: read)
    }

    /// Where cgroup v2 and v1's `cpu` controller are usually mounted.
    static let conventionalMounts = [
        Mount(version: .two, root: "/", mountPoint: "/sys/fs/cgroup"),
        Mount(version: .one, root: "/", mountPoint: "/sys/fs/cgroup/cpu"),
    ]

    /// The tightest quota over the directories that `cgroups` (the text of
    /// `/proc/PID/cgroup`) places under `mounts`.
    static func cores(cgroups: String, mounts: [Mount], read: (String) -> String?) -> Int? {
        var tightest: Int?
        for (mount, directory) in directories(cgroups: cgroups, mounts: mounts) {
            for level in directoryAndAncestors(directory, upTo: mount.top) {
                let quota: Int?
                switch mount.version {
                case .two:
                    quota = read(level + "/cpu.max").flatMap(quotaCores(cgroup2CPUMax:))
                case .one:
                    quota = quotaCores(quota: read(level + "/cpu.cfs_quota_us"), period: read(level + "/cpu.cfs_period_us"))
                }
                if let quota { tightest = min(tightest ?? quota, quota) }
            }
        }
        return tightest
    }

    /// The process's cgroup directory under each of `mounts` that shows it,
    /// from `cgroups` (the text of `/proc/PID/cgroup`).
    static func directories(cgroups: String, mounts: [Mount]) -> [(mount: Mount, directory: String)] {
        mounts.compactMap { mount in
            guard let path = cgroupPath(in: cgroups, for: mount.version),
                  let directory = directory(of: path, under: mount) else { return nil }
            return (mount, directory)
        }
    }

    /// The cgroup v2 mounts and the cgroup v1 mounts of the `cpu` controller
    /// in the text of `/proc/PID/mountinfo`.
    ///
    /// A line is `ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS`;
    /// v1 lists its controllers among the super options (`rw,cpu,cpuacct`).
    static func mounts(inMountInfo text: String) -> [Mount] {
        var mounts: [Mount] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 7, let separator = fields.firstIndex(of: "-"), separator >= 6,
                  fields.count > separator + 1 else { continue }
            let type = fields[separator + 1]
            let version: Mount.Version
            if type == "cgroup2" {
                version = .two
            } else if type == "cgroup", fields.count > separator + 3,
                      fields[separator + 3].split(separator: ",").contains("cpu") {
                version = .one
            } else {
                continue
            }
            mounts.append(Mount(version: version, root: unescaped(fields[3]), mountPoint: unescaped(fields[4])))
        }
        return mounts
    }

    /// The process's cgroup in the hierarchy of `version`, from the text of
    /// `/proc/PID/cgroup`: `0::PATH` for v2, `ID:CONTROLLERS:PATH` with `cpu`
    /// among the controllers for v1.
    static func cgroupPath(in text: String, for version: Mount.Version) -> String? {
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            switch version {
            case .two where fields[0] == "0" && fields[1].isEmpty:
                return String(fields[2])
            case .one where fields[1].split(separator: ",").contains("cpu"):
                return String(fields[2])
            default:
                continue
            }
        }
        return nil
    }

    /// Where cgroup `path` is in the file system, or nil when the mount does
    /// not show it (the cgroup lies outside the mount's sub-tree).
    static func directory(of path: String, under mount: Mount) -> String? {
        if mount.root == "/" { return path == "/" ? mount.top : mount.top + path }
        if path == mount.root { return mount.top }
        guard path.hasPrefix(mount.root + "/") else { return nil }
        return mount.top + path.dropFirst(mount.root.count)
    }

    /// `directory`, its parent, and so on up to `top` included.
    static func directoryAndAncestors(_ directory: String, upTo top: String) -> [String] {
        var levels = [directory]
        var current = Substring(directory)
        while current.count > top.count, current.hasPrefix(top), let slash = current.lastIndex(of: "/") {
            current = current[..<slash]
            if current.count < top.count { break }
            levels.append(String(current))
        }
        return levels
    }

    /// Cores from cgroup v2's `cpu.max` (`200000 100000` is 2; `max 100000`
    /// is no limit, nil). A fraction of a core counts as a whole one.
    static func quotaCores(cgroup2CPUMax contents: String) -> Int? {
        let fields = contents.split(whereSeparator: \.isWhitespace)
        guard fields.count == 2 else { return nil }
        return quotaCores(quota: String(fields[0]), period: String(fields[1]))
    }

    /// Cores from a quota and a period in microseconds (cgroup v1's
    /// `cpu.cfs_quota_us`, -1 for no limit, and `cpu.cfs_period_us`).
    static func quotaCores(quota: String?, period: String?) -> Int? {
        guard let quota = quota.flatMap({ Int($0.filter { !$0.isWhitespace }) }), quota > 0,
              let period = period.flatMap({ Int($0.filter { !$0.isWhitespace }) }), period > 0 else { return nil }
        return (quota + period - 1) / period
    }

    /// A mountinfo field with its octal escapes (`\040` for a space) decoded.
    static func unescaped(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "\\"), utf8.count >= 3,
               let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
