#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How many cores this process can keep busy: the CPUs it may run on
/// (`taskset`, cpusets) and, in a container, its CPU quota, whichever is
/// less. `_SC_NPROCESSORS_ONLN` counts every core of the machine, so a server
/// limited to two cores of sixty-four would start sixty-four event loops
/// that share two cores.
enum UsableCores {
    /// Reads `/proc/self/status` and the cgroup CPU quota. The files live in
    /// memory (procfs, cgroupfs), so this does not wait on a disk.
    static func count() -> Int {
        let online = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let allowed = text("/proc/self/status").flatMap(allowedCPUs(inStatus:)) ?? online
        let quota = text("/sys/fs/cgroup/cpu.max").flatMap(quotaCores(cgroup2CPUMax:))
            ?? quotaCores(quota: text("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), period: text("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
        return max(1, min(allowed, quota ?? allowed))
    }

    /// The number of CPUs in `Cpus_allowed_list:` (`0-3,8,10-11` is 7).
    static func allowedCPUs(inStatus status: String) -> Int? {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { return nil }
        let list = line.dropFirst("Cpus_allowed_list:".count).filter { !$0.isWhitespace }
        var count = 0
        for range in list.split(separator: ",") {
            let bounds = range.split(separator: "-", omittingEmptySubsequences: false)
            switch bounds.count {
            case 1:
                guard Int(bounds[0]) != nil else { return nil }
                count += 1
            case 2:
                guard let low = Int(bounds[0]), let high = Int(bounds[1]), low <= high else { return nil }
                count += high - low + 1
            default:
                return nil
            }
        }
        return count > 0 ? count : nil
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

    /// A small file's text, or nil if it cannot be read.
    private static func text(_ path: String) -> String? {
        guard let bytes = try? FileContents.read(path, purpose: "the CPU limits") else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
