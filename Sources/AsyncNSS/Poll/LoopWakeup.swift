internal import CNSS
#if canImport(Glibc)
import Glibc
#endif

/// What wakes an event loop out of `PR_Poll`: an eventfd, which the loop
/// polls through an NSPR descriptor made for it (`PR_CreateSocketPollFd`).
///
/// Not NSPR's pollable event: that is a pipe whose two ends NSPR makes
/// without `FD_CLOEXEC`, so every process a server started (with
/// `posix_spawn`, `system` or `popen`) held a copy of both ends of every
/// loop's pipe. The eventfd is close-on-exec and nonblocking from the
/// start, and it is one descriptor instead of two.
struct LoopWakeup: Sendable {
    /// The descriptor `PR_Poll` watches for `PR_POLL_READ`.
    let pollable: PollSocket
    /// The eventfd; internal for tests.
    let eventDescriptor: Int32

    init() throws {
        let operation = "creating an event loop's wakeup"
        let descriptor = cnss_wakeup_open()
        guard descriptor >= 0 else {
            throw TLSError(kind: .runtime, operation: operation, message: "eventfd(2) failed: \(String(cString: strerror(errno)))")
        }
        guard let pollFD = PR_CreateSocketPollFd(PROsfd(descriptor)) else {
            let error = TLSError.fromLastNSSError(operation)
            Glibc.close(descriptor)
            throw error
        }
        pollable = PollSocket(fd: pollFD)
        eventDescriptor = descriptor
    }

    /// Makes the next (or the current) `PR_Poll` return. Safe from any thread.
    func set() {
        cnss_wakeup_set(eventDescriptor)
    }

    /// Clears what ``set()`` did; call it after `PR_Poll` reported the
    /// wakeup readable. Never blocks.
    func consume() {
        cnss_wakeup_consume(eventDescriptor)
    }

    /// Frees the NSPR descriptor and closes the eventfd. Call it once, after
    /// the loop's thread has stopped polling.
    func destroy() {
        PR_DestroySocketPollFd(pollable.fd)
        Glibc.close(eventDescriptor)
    }
}
