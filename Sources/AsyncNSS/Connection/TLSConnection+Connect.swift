internal import CNSS
public import CoreMetrics
public import Logging

extension TLSConnection {
    /// Connects to `host:port` and completes the TLS handshake.
    ///
    /// The name is resolved on a thread the library owns; each address is tried
    /// in turn with a nonblocking connect. The server's certificate is checked
    /// against ``TLSConfiguration/trust`` and against ``TLSConfiguration/serverName``
    /// (or `host`), which is also sent as SNI. Connecting and the handshake must
    /// finish within ``TLSConfiguration/handshakeTimeout``.
    ///
    /// - Parameters:
    ///   - host: A name or an address; each address it resolves to is tried in turn.
    ///   - port: The server's port.
    ///   - configuration: A client configuration: trust, versions, identity.
    ///   - logger: Where the connection logs (see ``logger``); `nil`:
    ///     ``TLSConfiguration/logger``, else nowhere.
    ///   - metrics: Where the client's swift-metrics go (`asyncnss_client_…`,
    ///     listed in the README); `nil` uses `MetricsSystem.factory`.
    public static func connect(
        host: String,
        port: Int,
        configuration: TLSConfiguration = .makeClientConfiguration(),
        logger: Logger? = nil,
        metrics: (any MetricsFactory)? = nil
    ) async throws -> TLSConnection {
        try await connect(host: host, port: port, configuration: configuration, earlyData: [], logger: logger, metrics: metrics)
    }

    /// Connects like ``connect(host:port:configuration:logger:metrics:)``
    /// and sends `earlyData` first: as TLS 1.3 early data (0-RTT), with the
    /// ClientHello, when a session with this server resumes and allows it,
    /// a round trip sooner; otherwise, or for what the server refused, right
    /// after the handshake. Either way the server receives it once, in order.
    /// ``TLSConnectionInfo/earlyDataAccepted`` says which way it went.
    ///
    /// Early data may be replayed by an attacker: send only requests that do
    /// no harm when repeated.
    ///
    /// - Parameters:
    ///   - host: A name or an address; each address it resolves to is tried in turn.
    ///   - port: The server's port.
    ///   - configuration: A client configuration: trust, versions, identity.
    ///   - earlyData: The first bytes to send.
    ///   - logger: Where the connection logs; `nil`: ``TLSConfiguration/logger``, else nowhere.
    ///   - metrics: Where the client's swift-metrics go; `nil` uses `MetricsSystem.factory`.
    public static func connect(
        host: String,
        port: Int,
        configuration: TLSConfiguration = .makeClientConfiguration(),
        earlyData: [UInt8],
        logger: Logger? = nil,
        metrics: (any MetricsFactory)? = nil
    ) async throws -> TLSConnection {
        let operation = "connecting to \(host):\(port)"
        let (port, services) = try configuration.prepare(port: port, as: .client, operation)
        configuration.keyLog?.announce(to: logger ?? configuration.logger ?? TLSKeyLog.defaultLogger)
        let verification = try await TrustPreparation.verification(for: configuration.trust, services: services)
        let addresses = try await NetworkAddress.resolve(host, port: port, services: services)
        let serverName = configuration.serverName ?? NetworkAddress.bareHost(host)
        let deadline = ContinuousClock.now + configuration.handshakeTimeout
        let metrics = ConnectionMetrics(factory: metrics ?? MetricsSystem.factory, role: .client)
        let logger = logger ?? configuration.logger ?? ConnectionLogging.disabled
        do {
            return try await NetworkAddress.firstConnected(addresses, operation: operation, tryNext: Self.isConnectFailure) { address in
                try await connect(to: address, configuration: configuration, serverName: serverName, verification: verification, deadline: deadline,
                                  earlyData: earlyData, logger: logger, metrics: metrics, services: services)
            }
        } catch let retry as EncryptedClientHelloRetry {
            // The server rejected the ECH configuration and sent its current
            // one: one more try with it (RFC 9849 §6.1.6), and no more.
            logger.debug("the server rejected the ECH configuration and sent another: trying once more with it")
            var retried = configuration
            retried.encryptedClientHelloConfigList = retry.configList
            do {
                return try await connect(to: retry.address, configuration: retried, serverName: serverName, verification: verification,
                                         deadline: .now + configuration.handshakeTimeout, earlyData: earlyData, logger: logger, metrics: metrics, services: services)
            } catch let again as EncryptedClientHelloRetry {
                throw again.error
            }
        }
    }

    /// Connects, runs `body` and closes the connection, also when `body` throws.
    public nonisolated(nonsending) static func withConnection<Result>(
        host: String,
        port: Int,
        configuration: TLSConfiguration = .makeClientConfiguration(),
        logger: Logger? = nil,
        metrics: (any MetricsFactory)? = nil,
        _ body: (TLSConnection) async throws -> Result
    ) async throws -> Result {
        let connection = try await connect(host: host, port: port, configuration: configuration, logger: logger, metrics: metrics)
        return try await connection.executeThenClose(body)
    }

    /// Errors after which the next address is worth trying.
    private static func isConnectFailure(_ error: any Error) -> Bool {
        guard let error = error as? TLSError, error.kind == .nss, let code = error.nssCode else { return false }
        return [PRErrorCode(PR_CONNECT_REFUSED_ERROR), PRErrorCode(PR_NETWORK_UNREACHABLE_ERROR), PRErrorCode(PR_HOST_UNREACHABLE_ERROR), PRErrorCode(PR_ADDRESS_NOT_AVAILABLE_ERROR), PRErrorCode(PR_CONNECT_TIMEOUT_ERROR)].contains(code)
    }

    private static func connect(
        to address: NetworkAddress,
        configuration: TLSConfiguration,
        serverName: String,
        verification: ConnectionCallbacks.Verification,
        deadline: ContinuousClock.Instant,
        earlyData: [UInt8],
        logger: Logger,
        metrics: ConnectionMetrics,
        services: RuntimeServices
    ) async throws -> TLSConnection {
        let operation = "connecting to \(address)"
        let tcp = try TCPSocketOptions.openSocket(family: address.family, operation)
        let fd = try ReadAheadLayer.pushThenImport(tcp, operation: operation) { SSL_ImportFD(nil, $0) }
        let socket = SocketHandle(fd, services: services)
        let callbacks = ConnectionCallbacks(isServer: false, verification: verification, serverName: serverName, identity: configuration.identity, settings: ConnectionSettings(configuration, role: .client), metrics: metrics, logger: logger, peer: address.description, services: services)
        callbacks.bind(to: socket)
        metrics.connectionStarted()
        callbacks.whenEnded { metrics.connectionEnded() }
        do {
            try socket.withFD(operation) { fd in
                try TCPSocketOptions.setNonblocking(fd)
                try TCPSocketOptions.setNoDelay(fd)
                try SSLSocketSetup.apply(configuration, to: fd, as: .client, serverName: serverName, operation: operation)
                try SSLSocketSetup.setOption(fd, SSL_ENABLE_0RTT_DATA, !earlyData.isEmpty, operation)
                try callbacks.install(on: fd)
            }
            let remoteAddress = address.description
            // The connect and the handshake run on the socket's loop, where
            // each of their waits is polled.
            let (event, sentEarly) = try await withTaskExecutorPreference(socket.pollLoop) {
                try await TCPConnect.run(socket, to: address, deadline: deadline, operation: operation)
                return try await HandshakeDriver(loop: socket.pollLoop).run(socket, callbacks: callbacks, peer: remoteAddress, timeout: max(.zero, deadline - .now), sendingEarly: earlyData)
            }
            if configuration.encryptedClientHelloConfigList != nil, !event.info.encryptedClientHelloAccepted {
                // NSS fails a TLS 1.3 handshake that rejected ECH itself, but
                // lets one that fell back to TLS 1.2 succeed.
                throw TLSError(kind: .nss, operation: "handshake with \(remoteAddress)", nssCode: PRErrorCode(SSL_ERROR_ECH_RETRY_WITHOUT_ECH.rawValue),
                               nssName: "SSL_ERROR_ECH_RETRY_WITHOUT_ECH",
                               message: "the server did not accept Encrypted Client Hello (it negotiated \(event.info.protocolVersion)); connect without encryptedClientHelloConfigList only if the server name may go in the clear")
            }
            let connection = TLSConnection(socket: socket, callbacks: callbacks, remoteAddress: remoteAddress, initialEvent: event)
            if callbacks.logLevel <= .debug { connection.logger.debug("handshake completed") }
            // NSS does not send again what the server refused as early data.
            let unsent = event.info.earlyDataAccepted ? earlyData.dropFirst(sentEarly) : earlyData[...]
            if !unsent.isEmpty {
                do {
                    try await connection.write(Array(unsent))
                } catch {
                    await connection.close()
                    throw error
                }
            }
            return connection
        } catch {
            let retry = EncryptedClientHelloRetry(after: error, on: socket, address: address)
            await socket.close()
            callbacks.connectionEnded()
            if let retry { throw retry }
            if !(error is CancellationError) {
                callbacks.logger.debug("connecting failed", metadata: ["error": "\(error)"])
            }
            throw error
        }
    }
}

/// A handshake that the server failed with `SSL_ERROR_ECH_RETRY_WITH_ECH`,
/// and the configuration list it sent for another try.
struct EncryptedClientHelloRetry: Error {
    let error: any Error
    let configList: [UInt8]
    let address: NetworkAddress

    /// The retry of a failed handshake on `socket`, if `error` asks for one;
    /// read before the socket closes.
    init?(after error: any Error, on socket: SocketHandle, address: NetworkAddress) {
        guard let tlsError = error as? TLSError, tlsError.nssCode == PRErrorCode(SSL_ERROR_ECH_RETRY_WITH_ECH.rawValue) else { return nil }
        let list = try? socket.withFD("reading the server's ECH retry configurations") { fd -> [UInt8]? in
            var item = SECItem()
            guard cnss_get_ech_retry_configs(fd, &item) == SECSuccess else { return nil }
            defer { SECITEM_FreeItem(&item, PR_FALSE) }
            return item.bytes
        }
        guard let configList = list ?? nil, ECHConfigList(configList) != nil else { return nil }
        self.error = error
        self.configList = configList
        self.address = address
    }
}

/// A nonblocking TCP connect: `PR_Connect`, then `PR_ConnectContinue` once writable.
enum TCPConnect {
    private enum Step {
        case connected
        case pending
    }

    static func run(_ socket: SocketHandle, to address: NetworkAddress, deadline: ContinuousClock.Instant, operation: String) async throws {
        var target = address.raw
        var step = try socket.withFD(operation) { fd -> Step in
            if PR_Connect(fd, &target, PRIntervalTime(PR_INTERVAL_NO_WAIT)) == PR_SUCCESS { return .connected }
            let code = PR_GetError()
            if code == NSSErrors.inProgress || code == NSSErrors.wouldBlock { return .pending }
            throw TLSError.fromNSSCode(code, operation)
        }
        while case .pending = step {
            switch await socket.wait(for: .write, deadline: deadline) {
            case .ready, .interrupted:
                break
            case .timedOut:
                throw TLSError(kind: .handshakeTimedOut, operation: operation, message: "the TCP connection was not established in time")
            case .cancelled:
                throw CancellationError()
            case .closed, .shutDown:
                throw TLSError(kind: .closed, operation: operation, message: "the socket was closed while connecting")
            }
            step = try socket.withFD(operation) { fd -> Step in
                if PR_ConnectContinue(fd, Int16(PR_POLL_WRITE)) == PR_SUCCESS {
                    // A wakeup can be spurious; only a peer name proves the connection.
                    var peer = PRNetAddr()
                    return PR_GetPeerName(fd, &peer) == PR_SUCCESS ? .connected : .pending
                }
                let code = PR_GetError()
                if code == NSSErrors.inProgress || code == NSSErrors.wouldBlock { return .pending }
                throw TLSError.fromNSSCode(code, operation)
            }
        }
    }
}
