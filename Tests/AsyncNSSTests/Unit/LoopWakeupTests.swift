import CNSS
import Foundation
import Testing
@testable import AsyncNSS
#if canImport(Glibc)
import Glibc
#endif

/// What wakes an event loop from `PR_Poll`: an eventfd polled through NSPR,
/// close-on-exec, so that processes the server starts do not hold it.
@Suite("Event-loop wakeup", .timeLimit(.minutes(1)))
struct LoopWakeupTests {
    /// Whether `PR_Poll`, without waiting, reports the wakeup readable.
    private static func isSet(_ wakeup: LoopWakeup) -> Bool {
        var descriptor = PRPollDesc(fd: wakeup.pollable.fd, in_flags: Int16(PR_POLL_READ), out_flags: 0)
        let count = PR_Poll(&descriptor, 1, PRIntervalTime(0))
        return count == 1 && descriptor.out_flags & Int16(PR_POLL_READ) != 0
    }

    @Test("set makes PR_Poll report it readable; consume clears it, however often it was set; consuming an unset wakeup does not block")
    func setAndConsume() throws {
        let wakeup = try LoopWakeup()
        defer { wakeup.destroy() }
        #expect(!Self.isSet(wakeup))
        wakeup.consume()
        #expect(!Self.isSet(wakeup))
        wakeup.set()
        #expect(Self.isSet(wakeup))
        wakeup.consume()
        #expect(!Self.isSet(wakeup))
        for _ in 0..<3 { wakeup.set() }
        #expect(Self.isSet(wakeup))
        wakeup.consume()
        #expect(!Self.isSet(wakeup))
    }

    @Test("a wakeup set from another thread ends a PR_Poll that waits with no timeout")
    func wakesAWaitingPoll() async throws {
        let wakeup = try LoopWakeup()
        defer { wakeup.destroy() }
        let setter = Task.detached {
            try await Task.sleep(for: .milliseconds(50))
            wakeup.set()
        }
        let count = try await onOwnThread { () -> Int32 in
            var descriptor = PRPollDesc(fd: wakeup.pollable.fd, in_flags: Int16(PR_POLL_READ), out_flags: 0)
            return PR_Poll(&descriptor, 1, cnss_interval_no_timeout())
        }
        try await setter.value
        #expect(count == 1)
    }

    @Test("every running loop wakes through one eventfd that is close-on-exec, and its wakeup still works")
    func loopWakeupsAreCloseOnExecEventfds() async throws {
        let group = try PollGroup(threads: 3)
        defer { group.shutdown() }
        for loop in group.loops + [group.coldLoop].compactMap({ $0 }) {
            let descriptor = loop.wakeup.eventDescriptor
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)")
            #expect(target == "anon_inode:[eventfd]")
            #expect(fcntl(descriptor, F_GETFD) & FD_CLOEXEC != 0, "the wakeup of a loop would leak into child processes")
        }
        // A job enqueued from here (not a loop thread) must wake the loop.
        let loop = group.loops[0]
        let ran = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            Task(executorPreference: loop) { continuation.resume(returning: true) }
        }
        #expect(ran)
    }
}
