internal import CNSS
import Logging

/// Which side of the TLS handshake a ``TCPConnection`` takes in ``TCPConnection/startTLS(_:role:)``.
public enum TLSRole: Sendable, Hashable {
    /// Sends the ClientHello and verifies the server.
    case client
    /// Answers the ClientHello with ``TLSConfiguration/identity``.
    case server
}

/// A plain TCP connection over the same poll thread as TLS, for protocols that
/// start TLS in the middle of a conversation (STARTTLS, as in SMTP, IMAP, LDAP).
///
/// Exchange plain bytes with ``receive(maxBytes:)`` and ``write(_:)``, then call
/// ``startTLS(_:role:)`` to run a handshake on the same socket and get a
/// ``TLSConnection``. After that this object no longer reads, writes or closes.
///
/// - Important: Bytes already received but not yet used when TLS starts are
///   not handed to TLS; protocols forbid pipelining across STARTTLS for this reason.
public actor TCPConnection {
    /// The peer's address, `127.0.0.1:54321` or `[::1]:54321`.
    public nonisolated let remoteAddress: String
    /// The host name given to ``connect(host:port:timeout:)``, checked by a TLS client.
    let hostName: String?
    /// The socket until TLS starts; then the ``TLSConnection`` is its one owner.
    private var plainSocket: SocketHandle?
    /// The waits of plain reads and writes under way. ``startTLS(_:role:)``
    /// interrupts them as it takes the socket, so that they end with `closed`
    /// at once. Left to readiness, a wait moved to the cold loop could sleep
    /// for good: the handshake consumes the bytes that made the socket
    /// readable before the cold loop's `poll` looks again.
    private var plainWaits: Set<PollWaitID> = []

    /// The PROXY protocol header that came first, on a ``TCPListener`` that
    /// requires one; ``remoteAddress`` is then its client's address. Nil otherwise.
    public nonisolated let proxyHeader: ProxyProtocolHeader?

    init(socket: SocketHandle, remoteAddress: String, hostName: String?, proxyHeader: ProxyProtocolHeader? = nil) {
        self.plainSocket = socket
        self.remoteAddress = remoteAddress
        self.hostName = hostName
        self.proxyHeader = proxyHeader
    }

    /// Connects to `host:port` without TLS, trying each resolved address in turn.
    public static func connect(host: String, port: Int, timeout: Duration = .seconds(10)) async throws -> TCPConnection {
        let operation = "connecting to \(host):\(port)"
        let port = try NetworkAddress.port(port, operation)
        let services = try Runtime.shared.services()
        let addresses = try await NetworkAddress.resolve(host, port: port, services: services)
        let deadline = ContinuousClock.now + timeout
        return try await NetworkAddress.firstConnected(addresses, operation: operation, tryNext: { _ in true }) { address in
            let fd = try TCPSocketOptions.openSocket(family: address.family, operation)
            let socket = SocketHandle(fd, services: services)
            do {
                try socket.withFD(operation) { fd in
                    try TCPSocketOptions.setNonblocking(fd)
                    try TCPSocketOptions.setNoDelay(fd)
                }
                try await TCPConnect.run(socket, to: address, deadline: deadline, operation: operation)
                return TCPConnection(socket: socket, remoteAddress: address.description, hostName: NetworkAddress.bareHost(host))
            } catch {
                await socket.close()
                throw error
            }
        }
    }

    /// Receives the next chunk of at most `maxBytes` bytes, or `nil` once the peer closed.
    public func receive(maxBytes: Int = 16 * 1024) async throws -> [UInt8]? {
        let operation = "reading from \(remoteAddress)"
        while true {
            // Looked up again after every wait: startTLS may have run meanwhile.
            let socket = try openSocket(operation)
            switch try socket.readSome(maxBytes: maxBytes, operation: operation) {
            case .bytes(let bytes):
                return bytes
            case .endOfStream:
                return nil
            case .failed(let code) where code == NSSErrors.wouldBlock:
                try await waitFor(.read, on: socket, operation)
            case .failed(let code):
                throw TLSError.fromNSSCode(code, operation)
            }
        }
    }

    /// Writes every byte, waiting while the peer is slow.
    public func write(_ bytes: [UInt8]) async throws {
        let operation = "writing to \(remoteAddress)"
        var offset = 0
        while offset < bytes.count {
            let socket = try openSocket(operation)
            let written = try socket.writeSome(bytes, from: offset, operation: operation)
            if written > 0 {
                offset += written
            } else {
                try await waitFor(.write, on: socket, operation)
            }
        }
    }

    /// Closes the socket, unless TLS was started on it: then the
    /// ``TLSConnection`` owns it.
    public func close() async {
        await plainSocket?.close()
    }

    /// Runs a TLS handshake on this socket and returns the TLS connection.
    ///
    /// A client checks the server's certificate against `configuration.serverName`,
    /// or the host given to ``connect(host:port:timeout:)``. A server needs
    /// `configuration.identity`.
    public func startTLS(_ configuration: TLSConfiguration, role: TLSRole) async throws -> TLSConnection {
        let operation = "starting TLS with \(remoteAddress)"
        _ = try openSocket(operation)
        try configuration.validate(as: role, operation)
        configuration.keyLog?.announce(to: configuration.logger ?? TLSKeyLog.defaultLogger)
        guard configuration.proxyProtocol == .off else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "a PROXY protocol header comes before the plain-text protocol: read it with TCPListener.bind(proxyProtocol: .required)")
        }
        let services = try Runtime.shared.services()
        let isServer = role == .server
        let verification = try await TrustPreparation.verification(for: configuration, as: role, services: services)
        let serverName = configuration.serverName ?? hostName ?? ""
        if !isServer, serverName.isEmpty {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "a TLS client needs a server name to verify: set TLSConfiguration.serverName")
        }
        // From here on the handshake, then the TLS connection, own the socket.
        let socket = try openSocket(operation)
        plainSocket = nil
        for id in plainWaits { socket.interruptWait(id) }
        let callbacks = ConnectionCallbacks(
            isServer: isServer, verification: verification, serverName: isServer ? nil : serverName,
            identity: isServer ? nil : configuration.identity, settings: ConnectionSettings(configuration, role: role),
            logger: configuration.logger ?? ConnectionLogging.disabled, peer: remoteAddress, services: services
        )
        callbacks.bind(to: socket)
        do {
            // The read-ahead layer, then the SSL layer, go on top of this
            // descriptor's stack; the PRFileDesc pointer stays the same.
            // Plain reads went straight to the socket, so the layer starts
            // empty: no plain byte is handed to TLS. Behind a proxy the layer
            // is there already (the header was read through it), and the
            // plain reads took their bytes from it.
            try socket.withFD(operation) { fd in
                if !ReadAheadLayer.isPushed(on: fd) { try ReadAheadLayer.push(onto: fd, operation: operation) }
            }
            // One deadline covers reading the ClientHello for its server name
            // and the handshake that follows.
            let started = ContinuousClock.now
            let deadline = started + configuration.handshakeTimeout
            let chosen = isServer
                ? try await ServerNamePreselection.configuration(configuration, for: socket, callbacks: callbacks, deadline: deadline, operation: operation)
                : nil
            try socket.withFD(operation) { fd in
                try SSLSocketSetup.importInPlace(fd, model: nil, operation: operation)
                try SSLSocketSetup.apply(chosen ?? configuration, to: fd, as: role, serverName: serverName, operation: operation)
                try callbacks.install(on: fd)
                // The TCP connection exists already: tell NSS which side to play.
                guard SSL_ResetHandshake(fd, isServer ? PR_TRUE : PR_FALSE) == SECSuccess else {
                    throw TLSError.fromLastNSSError(operation)
                }
            }
            let event = try await HandshakeDriver(loop: socket.pollLoop).run(socket, callbacks: callbacks, peer: remoteAddress, timeout: configuration.handshakeTimeout, startedAt: started)
            let connection = TLSConnection(socket: socket, callbacks: callbacks, remoteAddress: remoteAddress, initialEvent: event, proxyHeader: proxyHeader)
            if callbacks.logLevel <= .debug { connection.logger.debug("handshake completed", metadata: ["starttls": "true"]) }
            return connection
        } catch {
            await socket.close()
            callbacks.connectionEnded()
            if !(error is CancellationError) {
                callbacks.logger.debug("starting TLS failed", metadata: ["error": "\(error)"])
            }
            throw error
        }
    }

    /// The plain socket, unless TLS was started on it.
    private func openSocket(_ operation: String) throws -> SocketHandle {
        guard let plainSocket else {
            throw TLSError(kind: .closed, operation: operation, message: "TLS was started on this connection; use the TLSConnection")
        }
        return plainSocket
    }

    private func waitFor(_ interest: PollInterest, on socket: SocketHandle, _ operation: String) async throws {
        let id = socket.makeWaitID()
        plainWaits.insert(id)
        defer { plainWaits.remove(id) }
        do {
            try await socket.waitUntilReady(for: interest, id: id, operation: operation, closedMessage: "the connection is closed")
        } catch let error as CancellationError {
            await socket.close()
            throw error
        }
    }
}
