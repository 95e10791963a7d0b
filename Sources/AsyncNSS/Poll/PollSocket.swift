internal import CNSS

/// A `PRFileDesc` as a key in the poll registry.
// @unchecked Sendable: the pointer is only handed to NSPR calls that are
// safe to make from any thread (`PR_Poll` on the poll thread; I/O in the
// owning actor). It is closed only after `PollLoop.quiesce` has confirmed
// that no `PR_Poll` call is looking at it, so the poll thread never uses it
// after `PR_Close`.
struct PollSocket: Hashable, @unchecked Sendable {
    let fd: UnsafeMutablePointer<PRFileDesc>

    static func == (lhs: PollSocket, rhs: PollSocket) -> Bool { lhs.fd == rhs.fd }
    func hash(into hasher: inout Hasher) { hasher.combine(UInt(bitPattern: fd)) }
}
