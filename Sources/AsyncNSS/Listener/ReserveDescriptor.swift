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
/// leaves one slot free for the backoff; it is taken back before the next
/// accept. Opened when the listener binds, closed when its accept loop ends.
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

    /// Takes the slot back; false while the table is still full.
    func reclaim() -> Bool {
        fd.withLock { fd in
            if fd < 0 { fd = open("/dev/null", O_RDONLY | O_CLOEXEC) }
            return fd >= 0
        }
    }

    deinit { release() }
}
