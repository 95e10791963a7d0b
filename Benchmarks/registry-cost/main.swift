// The registry's own cost per poll cycle (beginPoll + endPoll + one new
// registration), with n sockets waiting for read and one of them ready per
// cycle: what the poll thread does under the registry lock on every wake-up,
// apart from PR_Poll. OldPollRegistry is PollRegistry.swift as of the commit
// given to registry-cost.sh; PollRegistry is the current one.
import Foundation

let clock = ContinuousClock()

func microseconds(_ duration: Duration, per count: Int) -> String {
    let (seconds, attoseconds) = duration.components
    let total = Double(seconds) * 1e6 + Double(attoseconds) / 1e12
    return String(format: "%.2f", total / Double(count))
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
    let oldStart = clock.now
    for cycle in 0..<cycles {
        sink &+= old.beginPoll(now: .now).entries.count
        let socket = cycle % n
        sink &+= old.endPoll(readySockets: [socket], failed: false, now: .now).count
        nextID += 1
        _ = old.register(PollWaitID(raw: nextID), socket: socket, interest: .read, deadline: nil, waiter: socket)
    }
    let oldTime = clock.now - oldStart
    let newStart = clock.now
    for cycle in 0..<cycles {
        sink &+= new.beginPoll(now: .now).changes.count
        let socket = cycle % n
        sink &+= new.endPoll(readySockets: [socket], failed: false, now: .now).count
        nextID += 1
        _ = new.register(PollWaitID(raw: nextID), socket: socket, interest: .read, deadline: nil, waiter: socket)
    }
    let newTime = clock.now - newStart
    print("\(n) sockets: before \(microseconds(oldTime, per: cycles)) µs per cycle, now \(microseconds(newTime, per: cycles)) µs per cycle (\(sink % 2))")
}
