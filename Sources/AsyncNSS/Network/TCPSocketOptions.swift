internal import CNSS

/// Socket options through NSPR.
enum TCPSocketOptions {
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
