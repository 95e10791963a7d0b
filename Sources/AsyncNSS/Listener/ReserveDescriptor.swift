import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One descriptor an accept loop holds in reserve and gives back while the
/// process is out of descriptors.
///
/// On Linux, libdispatch's thread-pool monitor opens `/proc/<tid>/stat` about
/// once a second and aborts the process if that fails; a server whose table
/// stays full while it backs off from EMFILE would die. Releasing the reserve
/// leaves one slot free for the backoff. It is taken back before the next
/// accept only if one more slot is free beside it, so a retry does not fill the
/// table while the process is still out of descriptors: the table is full only
/// between two system calls, not for an `accept` and a log line every backoff.
/// Opened when the listener binds, closed when its accept loop ends.
final class ReserveDescriptor: Sendable {
    private let fd: Mutex<Int32>

    init() { fd = Mutex(open("/dev/null", O_RDONLY | O_CLOEXEC)) }

    /// Frees the slot.
    func release() {
        fd.withLock { fd in
            if fd >= 0 { _ = close(fd) }
            fd = -1
        }
    }

    /// Takes the slot back if another slot is free beside it, for the accept
    /// that follows; false, with the slot left free, while the table is still
    /// (nearly) full. Free while the reserve is held: no system call.
    func reclaim() -> Bool {
        fd.withLock { fd in
            if fd >= 0 { return true }
            let reserve = open("/dev/null", O_RDONLY | O_CLOEXEC)
            guard reserve >= 0 else { return false }
            let room = open("/dev/null", O_RDONLY | O_CLOEXEC)
            guard room >= 0 else {
                _ = close(reserve)
                return false
            }
            _ = close(room)
            fd = reserve
            return true
        }
    }

    deinit { release() }
}
