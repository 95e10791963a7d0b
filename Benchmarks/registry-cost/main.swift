// The registry's own cost per poll cycle (beginPoll + endPoll + one new
// registration), with n sockets waiting for read and one of them ready per
// cycle: what the poll thread does under the registry lock on every wake-up,
// apart from PR_Poll. OldPollRegistry is PollRegistry.swift as of the commit
// given to registry-cost.sh; PollRegistry is the current one.
import Foundation

/// This thread's CPU time in microseconds: unlike the wall clock, it does not
/// count the time other processes on a shared machine take from us.
func cpuMicroseconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return Double(now.tv_sec) * 1e6 + Double(now.tv_nsec) / 1e3
}

func microseconds(_ total: Double, per count: Int) -> String {
    String(format: "%.2f", total / Double(count))
}

for n in [100, 1_000, 10_000] {
    var old = OldPollRegistry<Int, Int>()
    var new = PollRegistry<Int, Int>()
    var nextID: UInt64 = 0
    for socket in 0..<n {
        nextID += 1
        _ = old.register(PollWaitID(raw: nextID), socket: socket, interest: .read, deadline: nil, waiter: socket)
        _ = new.register(PollWaitID(raw: nextID), socket: socket, interest: .read, deadline: nil, waiter: socket)
    }
    let cycles = 2_000
    var sink = 0
    let oldStart = cpuMicroseconds()
    for cycle in 0..<cycles {
        sink &+= old.beginPoll(now: .now).entries.count
        let socket = cycle % n
        sink &+= old.endPoll(readySockets: [socket], failed: false, now: .now).count
        nextID += 1
        _ = old.register(PollWaitID(raw: nextID), socket: socket, interest: .read, deadline: nil, waiter: socket)
    }
    let oldTime = cpuMicroseconds() - oldStart
    let newStart = cpuMicroseconds()
    for cycle in 0..<cycles {
        sink &+= new.beginPoll(now: .now).changes.count
        let socket = cycle % n
        sink &+= new.endPoll(readySockets: [socket], failed: false, now: .now).count
        nextID += 1
        _ = new.register(PollWaitID(raw: nextID), socket: socket, interest: .read, deadline: nil, waiter: socket)
    }
    let newTime = cpuMicroseconds() - newStart
    print("\(n) sockets: before \(microseconds(oldTime, per: cycles)) µs of CPU per cycle, now \(microseconds(newTime, per: cycles)) µs of CPU per cycle (\(sink % 2))")
}
