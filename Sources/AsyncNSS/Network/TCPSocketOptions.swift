internal import CNSS
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Socket options through NSPR, and the one flag NSPR does not set.
enum TCPSocketOptions {
    /// Keeps the socket out of the processes this one starts (`FD_CLOEXEC`).
    /// NSPR creates and accepts sockets without it, so a child started with
    /// `posix_spawn`, `system` or `popen` would hold a copy of every open
    /// connection and listener: the peer would see no end after `close()`,
    /// and the port would stay bound after the server exits. NSS's own
    /// descriptors (the shared session cache of worker processes) are left
    /// alone.
    ///
    /// `F_SETFD` fails only on a descriptor that is not open, which these
    /// callers never pass, so the result is not checked.
    static func setCloseOnExec(_ fd: UnsafeMutablePointer<PRFileDesc>) {
        _ = fcntl(PR_FileDesc2NativeHandle(fd), F_SETFD, FD_CLOEXEC)
    }

    /// `PR_OpenTCPSocket` for `family`, close-on-exec: the listening and
    /// connecting sockets AsyncNSS opens all come from here.
    static func openSocket(family: Int32, _ operation: @autoclosure () -> String) throws -> UnsafeMutablePointer<PRFileDesc> {
        guard let fd = PR_OpenTCPSocket(family) else { throw TLSError.fromLastNSSError(operation()) }
        setCloseOnExec(fd)
        return fd
    }

    static func setNonblocking(_ fd: UnsafeMutablePointer<PRFileDesc>) throws {
        var data = PRSocketOptionData()
        data.option = PR_SockOpt_Nonblocking
        data.value.non_blocking = PR_TRUE
        try set(fd, &data, "making the socket nonblocking")
    }

    /// Nagle's algorithm costs a factor of about seven in handshake rate.
    static func setNoDelay(_ fd: UnsafeMutablePointer<PRFileDesc>) throws {
        var data = PRSocketOptionData()
        data.option = PR_SockOpt_NoDelay
        data.value.no_delay = PR_TRUE
        try set(fd, &data, "setting TCP_NODELAY")
    }

    static func setReuseAddress(_ fd: UnsafeMutablePointer<PRFileDesc>) throws {
        var data = PRSocketOptionData()
        data.option = PR_SockOpt_Reuseaddr
        data.value.reuse_addr = PR_TRUE
        try set(fd, &data, "setting SO_REUSEADDR")
    }

    private static func set(_ fd: UnsafeMutablePointer<PRFileDesc>, _ data: inout PRSocketOptionData, _ operation: String) throws {
        guard PR_SetSocketOption(fd, &data) == PR_SUCCESS else {
            throw TLSError.fromLastNSSError(operation)
        }
    }
}
