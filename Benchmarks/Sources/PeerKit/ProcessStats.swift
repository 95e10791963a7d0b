import Foundation

/// Reads another process's memory and CPU time from `/proc` (Linux only).
public enum ProcessStats {
    /// The resident set size of `pid` in KiB (`VmRSS` of `/proc/PID/status`).
    public static func residentKiB(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2, let kib = Int(fields[1]) { return kib }
        }
        throw ProcessStatsError(message: "no VmRSS for process \(pid)")
    }

    /// User plus system CPU time of `pid` in seconds (`/proc/PID/stat`).
    public static func cpuSeconds(_ pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // The command name may hold spaces; the fields after its ')' are fixed.
        guard let close = stat.lastIndex(of: ")") else {
            throw ProcessStatsError(message: "unreadable /proc/\(pid)/stat")
        }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3); utime and stime are fields 14 and 15.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw ProcessStatsError(message: "unreadable /proc/\(pid)/stat")
        }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (user + system) / ticks
    }
}

public struct ProcessStatsError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
