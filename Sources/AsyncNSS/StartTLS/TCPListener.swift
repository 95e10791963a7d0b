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
        let port = try NetworkAddress.port(port, operation)
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
            switch try socket.acceptSome(operation: operation) {
            case .accepted(let accepted, let peer):
                let services = try Runtime.shared.services()
                let connection = SocketHandle(accepted.fd, services: services)
                try connection.withFD(operation) { fd in
                    try TCPSocketOptions.setNonblocking(fd)
                    try TCPSocketOptions.setNoDelay(fd)
                }
                return TCPConnection(socket: connection, remoteAddress: peer.description, hostName: nil)
            case .failed(let code) where code == NSSErrors.wouldBlock:
                break
            case .failed(let code):
                throw TLSError.fromNSSCode(code, operation)
            }
            do {
                try await socket.waitUntilReady(for: .read, operation: operation, closedMessage: "the listener is closed")
            } catch let error as CancellationError {
                await socket.close()
                throw error
            }
        }
    }

    /// Stops listening.
    public func close() async {
        await socket.close()
    }
}
