#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How many cores this process can keep busy: the CPUs it may run on
/// (`taskset`, cpusets) and the CPU quota of its cgroup or of a cgroup above
/// it (a container, a systemd service or slice), whichever is less.
/// `_SC_NPROCESSORS_ONLN` counts every core of the machine, so a server
/// limited to two cores of sixty-four would start sixty-four event loops
/// that share two cores.
enum UsableCores {
    /// Reads `/proc/self/status`, `/proc/self/cgroup`, `/proc/self/mountinfo`
    /// and the cgroup files (``CgroupCPUQuota``). They live in memory
    /// (procfs, cgroupfs), so this does not wait on a disk.
    static func count() -> Int {
        let online = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let allowed = text("/proc/self/status").flatMap(allowedCPUs(inStatus:)) ?? online
        let quota = CgroupCPUQuota.cores(read: text)
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

    /// A small file's text, or nil if it cannot be read.
    private static func text(_ path: String) -> String? {
        guard let bytes = try? FileContents.read(path, purpose: "the CPU limits") else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
