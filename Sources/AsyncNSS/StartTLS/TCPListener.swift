internal import CNSS
public import Logging

/// A plain TCP listener whose connections may start TLS later; see ``TCPConnection``.
public actor TCPListener {
    /// The address the listener is bound to.
    public nonisolated let localAddress: String
    /// The bound port; the one the system chose when binding port 0.
    public nonisolated let port: Int
    private let socket: SocketHandle
    /// The accept loop that reads PROXY headers; nil without the protocol.
    private let proxied: ProxiedAccepts?

    private init(socket: SocketHandle, address: NetworkAddress, proxied: ProxiedAccepts?) {
        self.socket = socket
        self.localAddress = address.description
        self.port = Int(address.port)
        self.proxied = proxied
    }

    deinit {
        // A listener dropped without close() stops its accept loop; the
        // socket closes itself.
        proxied?.stop()
    }

    /// Binds to `host:port` (port 0 picks a free port) and listens.
    ///
    /// - Parameters:
    ///   - host: The address to listen on, IPv4 or IPv6 (a name is resolved).
    ///   - port: The port; 0 picks a free one (read it from ``port``).
    ///   - backlog: The kernel's queue of connections not yet accepted.
    ///   - proxyProtocol: ``ProxyProtocolPolicy/required`` reads a PROXY
    ///     protocol header (v1 or v2) from each connection before
    ///     ``accept()`` returns it, within `headerTimeout`, each in a task of
    ///     its own; its ``TCPConnection/remoteAddress`` is then the client's.
    ///     A connection without a valid header is closed and logged.
    ///   - headerTimeout: How long a new connection has to send its header.
    ///   - logger: Where refused headers and accept errors go.
    public static func bind(
        host: String = "127.0.0.1",
        port: Int,
        backlog: Int = 1024,
        proxyProtocol: ProxyProtocolPolicy = .off,
        headerTimeout: Duration = .seconds(10),
        logger: Logger? = nil
    ) async throws -> TCPListener {
        let operation = "listening on \(host):\(port)"
        let port = try NetworkAddress.port(port, operation)
        guard headerTimeout > .zero else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "the header timeout must be positive")
        }
        let services = try Runtime.shared.services()
        guard let address = try await NetworkAddress.resolve(host, port: port, services: services).first else {
            throw TLSError(kind: .nameResolution, operation: operation, message: "no addresses")
        }
        let (socket, bound) = try ListeningSocket.open(address, backlog: backlog, services: services, operation: operation)
        let proxied = proxyProtocol == .required
            ? ProxiedAccepts(listeningSocket: socket, localAddress: bound.description, services: services, headerTimeout: headerTimeout, logger: logger ?? Logger(label: "AsyncNSS.TCPListener"))
            : nil
        return TCPListener(socket: socket, address: bound, proxied: proxied)
    }

    /// Waits for the next connection. Cancelling the wait closes the listener.
    public func accept() async throws -> TCPConnection {
        if let proxied {
            do {
                return try await proxied.next()
            } catch let error as CancellationError {
                await close()
                throw error
            }
        }
        return try await acceptPlain()
    }

    private func acceptPlain() async throws -> TCPConnection {
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
        proxied?.stop()
        await socket.close()
    }
}
