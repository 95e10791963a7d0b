internal import CNSS

/// A plain TCP listener whose connections may start TLS later; see ``TCPConnection``.
public actor TCPListener {
    /// The address the listener is bound to.
    public nonisolated let localAddress: String
    /// The bound port; the one the system chose when binding port 0.
    public nonisolated let port: Int
    private let socket: SocketHandle

    private init(socket: SocketHandle, address: NetworkAddress) {
        self.socket = socket
        self.localAddress = address.description
        self.port = Int(address.port)
    }

    /// Binds to `host:port` (port 0 picks a free port) and listens.
    public static func bind(host: String = "127.0.0.1", port: Int, backlog: Int = 1024) async throws -> TCPListener {
        let operation = "listening on \(host):\(port)"
        guard let port = UInt16(exactly: port) else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "the port must be between 0 and 65535")
        }
        let services = try Runtime.shared.services()
        guard let address = try await NetworkAddress.resolve(host, port: port, services: services).first else {
            throw TLSError(kind: .nameResolution, operation: operation, message: "no addresses")
        }
        let (socket, bound) = try ListeningSocket.open(address, backlog: backlog, services: services, operation: operation)
        return TCPListener(socket: socket, address: bound)
    }

    /// Waits for the next connection. Cancelling the wait closes the listener.
    public func accept() async throws -> TCPConnection {
        let operation = "accepting on \(localAddress)"
        while true {
            var peer = PRNetAddr()
            let accepted = try socket.withFD(operation) { fd -> PollSocket? in
                if let accepted = PR_Accept(fd, &peer, PRIntervalTime(PR_INTERVAL_NO_WAIT)) {
                    return PollSocket(fd: accepted)
                }
                let code = PR_GetError()
                if code == NSSErrors.wouldBlock { return nil }
                throw TLSError.fromNSSCode(code, operation)
            }
            if let accepted {
                let services = try Runtime.shared.services()
                let connection = SocketHandle(accepted.fd, services: services)
                try connection.withFD(operation) { fd in
                    try TCPSocketOptions.setNonblocking(fd)
                    try TCPSocketOptions.setNoDelay(fd)
                }
                return TCPConnection(socket: connection, remoteAddress: NetworkAddress(raw: peer).description, hostName: nil)
            }
            switch await socket.wait(for: .read) {
            case .ready:
                continue
            case .cancelled:
                await socket.close()
                throw CancellationError()
            case .closed, .timedOut, .shutDown:
                throw TLSError(kind: .closed, operation: operation, message: "the listener is closed")
            }
        }
    }

    /// Stops listening.
    public func close() async {
        await socket.close()
    }
}
