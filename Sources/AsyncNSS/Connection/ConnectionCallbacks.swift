internal import CNSS
import Logging
import Synchronization

/// The per-connection object that NSS callbacks receive as their `void *arg`.
///
/// Gotcha 2: an accepted socket inherits the listener's callbacks and their
/// arguments, so every connection installs its own right after import. The
/// ``SocketHandle`` keeps this object alive until after `PR_Close`.
///
/// NSS calls these callbacks synchronously on the thread that drives the I/O,
/// with NSS locks held: they only record results and return.
///
/// One file per concern: this one holds the state and the lifecycle;
/// `+PeerVerification` checks the peer's certificate, `+ClientIdentity`
/// answers a server's certificate request, `+ServerName` answers the SNI
/// hook, and ``NSSCallbackEntryPoints`` are the C functions NSS calls.
final class ConnectionCallbacks: Sendable {
    enum Verification: Sendable {
        /// Accept any certificate (``TLSTrust/insecureNoVerification``).
        case none
        /// NSS's own check against the trust flags of every loaded token
        /// (system roots, databases), plus the name given to `SSL_SetURL`.
        case nssDefault
        /// Only these anchors, checked with `CERT_PKIXVerifyCert`.
        case anchors(TrustAnchors)
        /// Not prepared yet (a server that asks for no certificate until
        /// ``TLSConnection/requestClientCertificate()``); refuses every certificate.
        case deferred
    }

    let isServer: Bool
    // The state below sits in inline mutexes (its values are Sendable), not
    // in `Locked` boxes: one allocation fewer each, per connection.
    let verificationState: Mutex<Verification>
    /// The name a client checks the certificate against and sends as SNI.
    let serverName: String?
    let identity: TLSIdentity?
    let settings: ConnectionSettings
    let services: RuntimeServices
    let events = HandshakeEventHub()
    /// The waits of the connection's tasks that reads and deferred results end early.
    let interruptions = WaitInterruptions()
    /// Verdicts and identities that application closures compute in tasks.
    let deferred: DeferredCallbacks
    /// The listener's metrics, or the client's.
    let metrics: ConnectionMetrics?
    /// Where this connection logs, with its number and peer as metadata
    /// (see ``ConnectionLogging``); made on first use.
    var logger: Logger {
        decoratedLogger.withLock { logger in
            if let logger { return logger }
            let made = ConnectionLogging.logger(baseLogger, number: connectionNumber, peer: peer)
            logger = made
            return made
        }
    }
    /// The level of ``logger``, without making it: check it before logging
    /// something that costs to say.
    var logLevel: Logger.Level { baseLogger.logLevel }
    /// The application's logger, without the connection's metadata.
    private let baseLogger: Logger
    /// The connection's number in the process, given when it starts.
    private let connectionNumber = ConnectionLogging.nextNumber()
    /// The peer's address, as ``TLSConnection/remoteAddress`` spells it.
    let peer: String
    private let decoratedLogger = Mutex<Logger?>(nil)
    private let endHandlers = Mutex<(ended: Bool, handlers: [@Sendable () -> Void])>((false, []))
    /// Set when the peer's close_notify alert arrives, to tell a clean close from truncation.
    let closeNotifyReceived = Atomic<Bool>(false)
    /// The description of the last fatal alert this side sent, or -1.
    let fatalAlertSent = Atomic<Int>(-1)
    /// Set when the peer answers a renegotiation with a no_renegotiation warning.
    let renegotiationRefused = Atomic<Bool>(false)
    /// How many peer certificates passed verification, to tell whether a
    /// certificate request was answered with one.
    let peerCertificatesAccepted = Atomic<Int>(0)
    /// On a client, the status of the OCSP response the server stapled.
    let stapledOCSP = Mutex<OCSPStatus?>(nil)
    /// The code and ``VerificationNote`` of the last peer certificate this side refused.
    let refusalNote = Mutex<(PRErrorCode, String)?>(nil)
    /// On a server, the host name the client asked for (SNI).
    let requestedServerName = Mutex<String?>(nil)
    /// On a server, the SNI name whose identity the socket was set up with
    /// before the handshake (``ServerNamePreselection``); nil for the default.
    let preselectedServerName = Mutex<String?>(nil)
    /// On a server, whether the socket was set up without an identity for
    /// the SNI hook to choose one once NSS decrypted the ClientHello (ECH).
    let choosesIdentityAfterDecryption = Atomic<Bool>(false)

    /// Told once when the connection ends: a listener's bookkeeping.
    private let endObserver: (any ConnectionEndObserver)?

    init(isServer: Bool, verification: Verification, serverName: String?, identity: TLSIdentity?, settings: ConnectionSettings, metrics: ConnectionMetrics? = nil, logger: Logger, peer: String, services: RuntimeServices, endObserver: (any ConnectionEndObserver)? = nil) {
        self.endObserver = endObserver
        self.settings = settings
        self.baseLogger = logger
        self.peer = peer
        self.metrics = metrics
        self.isServer = isServer
        self.verificationState = Mutex(verification)
        self.serverName = serverName
        self.identity = identity
        self.services = services
        self.deferred = DeferredCallbacks(interruptions: interruptions)
        Self.live.add(1, ordering: .relaxed)
    }

    deinit {
        Self.live.subtract(1, ordering: .relaxed)
    }

    /// How many of these objects exist in the process. A socket dropped
    /// without `close()` frees its callbacks with it, so tests compare this
    /// with a baseline to catch an ownership cycle.
    static var liveCount: Int { live.load(ordering: .relaxed) }
    private static let live = Atomic<Int>(0)

    /// Ties this object to `socket`: the socket keeps it alive until after
    /// `PR_Close`, and deferred callbacks interrupt the socket's waits.
    func bind(to socket: SocketHandle) {
        socket.retainCallbackContext(self)
        interruptions.attach(socket)
    }

    /// Runs `handler` once the connection has ended (at once if it has).
    func whenEnded(_ handler: @escaping @Sendable () -> Void) {
        let runNow = endHandlers.withLock { state -> Bool in
            if state.ended { return true }
            state.handlers.append(handler)
            return false
        }
        if runNow { handler() }
    }

    /// Whether ``connectionEnded()`` ran.
    var hasEnded: Bool { endHandlers.withLock { $0.ended } }

    /// Cancels what still runs for the connection, ends its event streams,
    /// runs the ``whenEnded(_:)`` handlers and tells the end observer. Idempotent.
    func connectionEnded() {
        let handlers = endHandlers.withLock { state -> [@Sendable () -> Void] in
            if state.ended { return [] }
            state.ended = true
            defer { state.handlers.removeAll() }
            return state.handlers
        }
        deferred.close()
        events.finish()
        for handler in handlers { handler() }
        endObserver?.connectionEnded(self)
    }

    /// Installs the callbacks on `fd`, pointing at `self`.
    func install(on fd: UnsafeMutablePointer<PRFileDesc>) throws {
        let argument = Unmanaged.passUnretained(self).toOpaque()
        guard SSL_HandshakeCallback(fd, NSSCallbackEntryPoints.handshakeCompletedCallback, argument) == SECSuccess,
              SSL_AlertReceivedCallback(fd, NSSCallbackEntryPoints.alertReceived, argument) == SECSuccess,
              SSL_AlertSentCallback(fd, NSSCallbackEntryPoints.alertSent, argument) == SECSuccess,
              SSL_AuthCertificateHook(fd, NSSCallbackEntryPoints.authenticateCertificate, argument) == SECSuccess,
              SSL_BadCertHook(fd, NSSCallbackEntryPoints.badCertificateReceived, argument) == SECSuccess else {
            throw TLSError.fromLastNSSError("installing connection callbacks")
        }
        if settings.keyLog != nil {
            guard cnss_secret_callback(fd, NSSCallbackEntryPoints.secretDerived, argument) == SECSuccess else {
                throw TLSError.fromLastNSSError("installing the key log's secret callback")
            }
            ReadAheadLayer.watchClientHello(fd)
        }
        if isServer {
            guard SSL_SNISocketConfigHook(fd, NSSCallbackEntryPoints.serverNameReceived, argument) == SECSuccess else {
                throw TLSError.fromLastNSSError("installing the SNI hook")
            }
        } else {
            let status = identity == nil && settings.clientIdentityChooser == nil
                ? SSL_GetClientAuthDataHook(fd, nil, nil)
                : SSL_GetClientAuthDataHook(fd, NSSCallbackEntryPoints.provideClientCertificate, argument)
            guard status == SECSuccess else { throw TLSError.fromLastNSSError("installing the client certificate hook") }
        }
    }

    func handshakeCompleted(_ fd: UnsafeMutablePointer<PRFileDesc>) {
        if let info = ConnectionInfoReader.read(fd, isServer: isServer, requestedServerName: isServer ? requestedServerName.withLock { $0 } : serverName, stapledOCSPResponse: stapledOCSP.withLock { $0 }) {
            events.publish(info)
        }
    }

    /// Writes a TLS 1.3 secret that NSS just derived to the key log, named
    /// by the ClientHello's random. `written`: the secret protects what this
    /// side sends.
    func recordSecret(_ fd: UnsafeMutablePointer<PRFileDesc>, epoch: UInt16, written: Bool, secret: OpaquePointer) {
        guard let keyLog = settings.keyLog,
              let label = TLSKeyLog.label(epoch: epoch, fromClient: isServer != written),
              let random = ReadAheadLayer.clientRandom(fd),
              PK11_ExtractKeyValue(secret) == SECSuccess,
              let item = PK11_GetKeyData(secret), let data = item.pointee.data else { return }
        keyLog.record(label: label, clientRandom: random, secret: Array(UnsafeBufferPointer(start: data, count: Int(item.pointee.len))))
    }

    static func from(_ argument: UnsafeMutableRawPointer?) -> ConnectionCallbacks? {
        argument.map { Unmanaged<ConnectionCallbacks>.fromOpaque($0).takeUnretainedValue() }
    }
}
