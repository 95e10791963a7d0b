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
    private let verificationState: Mutex<Verification>
    /// The name a client checks the certificate against and sends as SNI.
    let serverName: String?
    let identity: TLSIdentity?
    let settings: ConnectionSettings
    let services: RuntimeServices
    let events = HandshakeEventHub()
    /// Verdicts and identities that application closures compute in tasks.
    let deferred = DeferredCallbacks()
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
    /// The code and ``VerificationNote`` of the last peer certificate this side refused.
    private let refusalNote = Mutex<(PRErrorCode, String)?>(nil)
    /// On a server, the host name the client asked for (SNI).
    let requestedServerName = Mutex<String?>(nil)
    /// On a server, the SNI name whose identity the socket was set up with
    /// before the handshake (``ServerNamePreselection``); nil for the default.
    let preselectedServerName = Mutex<String?>(nil)

    init(isServer: Bool, verification: Verification, serverName: String?, identity: TLSIdentity?, settings: ConnectionSettings, metrics: ConnectionMetrics? = nil, logger: Logger, peer: String, services: RuntimeServices) {
        self.settings = settings
        self.baseLogger = logger
        self.peer = peer
        self.metrics = metrics
        self.isServer = isServer
        self.verificationState = Mutex(verification)
        self.serverName = serverName
        self.identity = identity
        self.services = services
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
        deferred.attach(socket)
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

    /// Cancels what still runs for the connection, ends its event streams and
    /// runs the ``whenEnded(_:)`` handlers. Idempotent.
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
    }

    /// Installs the callbacks on `fd`, pointing at `self`.
    func install(on fd: UnsafeMutablePointer<PRFileDesc>) throws {
        let argument = Unmanaged.passUnretained(self).toOpaque()
        guard SSL_HandshakeCallback(fd, handshakeCompletedCallback, argument) == SECSuccess,
              SSL_AlertReceivedCallback(fd, alertReceived, argument) == SECSuccess,
              SSL_AlertSentCallback(fd, alertSent, argument) == SECSuccess,
              SSL_AuthCertificateHook(fd, authenticateCertificate, argument) == SECSuccess,
              SSL_BadCertHook(fd, badCertificateReceived, argument) == SECSuccess else {
            throw TLSError.fromLastNSSError("installing connection callbacks")
        }
        if isServer {
            guard SSL_SNISocketConfigHook(fd, serverNameReceived, argument) == SECSuccess else {
                throw TLSError.fromLastNSSError("installing the SNI hook")
            }
        } else {
            let status = identity == nil && settings.clientIdentityChooser == nil
                ? SSL_GetClientAuthDataHook(fd, nil, nil)
                : SSL_GetClientAuthDataHook(fd, provideClientCertificate, argument)
            guard status == SECSuccess else { throw TLSError.fromLastNSSError("installing the client certificate hook") }
        }
    }

    fileprivate func handshakeCompleted(_ fd: UnsafeMutablePointer<PRFileDesc>) {
        if let info = ConnectionInfoReader.read(fd, isServer: isServer, requestedServerName: isServer ? requestedServerName.withLock { $0 } : serverName) {
            events.publish(info)
        }
    }

    /// Answers NSS's SNI hook for `name`. The identity for a name was chosen
    /// before NSS read the ClientHello (``ServerNamePreselection``), so
    /// here the name is only recorded: 0 when that identity is the one set
    /// up, else the unknown-name policy. A name with an identity of its own
    /// that was not chosen beforehand is refused rather than answered with
    /// the default identity.
    fileprivate func selectIdentity(for name: String) -> PRInt32 {
        if let chosen = preselectedServerName.withLock({ $0 }), chosen.lowercased() == name.lowercased() {
            return 0
        }
        if settings.serverNameIdentities.identity(for: name) != nil {
            logger.debug("refusing a server name whose identity was not chosen before the handshake", metadata: ["sni": "\(name)"])
            return SSL_SNI_SEND_ALERT
        }
        return settings.unknownServerName == .reject ? SSL_SNI_SEND_ALERT : SSL_SNI_CURRENT_CONFIG_IS_USED
    }

    /// Prepares a deferred verification from the configuration's trust (which
    /// may load system roots or open a database, on the blocking pool).
    func prepareVerification() async throws {
        guard case .deferred = verificationState.withLock({ $0 }) else { return }
        let prepared = try await TrustPreparation.verification(for: settings.trust, services: services)
        verificationState.withLock { $0 = prepared }
    }

    /// NSS's auth-certificate hook: the configured trust, then the
    /// application's verifier. A refusal by the trust goes on to
    /// ``handleBadCertificate(_:)``, where the verifier may override it.
    fileprivate func authenticate(_ fd: UnsafeMutablePointer<PRFileDesc>, checkSignature: PRBool, isServer: PRBool) -> SECStatus {
        let status = verify(fd, checkSignature: checkSignature, isServer: isServer)
        guard status == SECSuccess else { return status }
        guard settings.certificateVerifier != nil else {
            PeerTrustMemo.remember(fd)
            peerCertificatesAccepted.add(1, ordering: .releasing)
            return SECSuccess
        }
        return runVerifier(fd, builtInFailure: nil)
    }

    /// NSS's bad-certificate hook, after the trust refused the chain: the
    /// verifier, if any, decides; without one the refusal stands.
    fileprivate func handleBadCertificate(_ fd: UnsafeMutablePointer<PRFileDesc>) -> SECStatus {
        let code = PR_GetError()
        guard settings.certificateVerifier != nil else {
            noteRefusal(code, fd)
            PORT_SetError(code)
            return SECFailure
        }
        return runVerifier(fd, builtInFailure: TLSError.fromNSSCode(code, "verifying the peer's certificate"))
    }

    /// Keeps what NSS's text for `code` leaves out (``VerificationNote``),
    /// for the error the handshake ends with.
    private func noteRefusal(_ code: PRErrorCode, _ fd: UnsafeMutablePointer<PRFileDesc>) {
        guard let peer = SSL_PeerCertificate(fd) else { return }
        defer { CERT_DestroyCertificate(peer) }
        guard let note = VerificationNote.explain(code, peer: peer, trust: settings.trust, checkedName: isServer ? nil : serverName, peerIsClient: isServer) else { return }
        refusalNote.withLock { $0 = (code, note) }
    }

    /// The handshake's error for NSS's `code`, with what ``VerificationNote``
    /// found when this side refused the peer's certificate with that code.
    func handshakeError(_ code: PRErrorCode, _ operation: String) -> TLSError {
        var error = TLSError.fromNSSCode(code, operation)
        if let (noted, note) = refusalNote.withLock({ $0 }), noted == code {
            error.message += " " + note
        }
        // NSS 3.87 reports a ClientHello whose ALPN list has nothing in
        // common with the server's as malformed; its alert tells the truth.
        if code == PRErrorCode(SSL_ERROR_RX_MALFORMED_CLIENT_HELLO.rawValue), fatalAlertSent.load(ordering: .acquiring) == 120 {
            error.message += " The ClientHello is well formed: it offers no ALPN protocol that this server accepts (TLSConfiguration.applicationProtocols, nss-tls --alpn), so the server sent a no_application_protocol alert."
        }
        return error
    }

    private func runVerifier(_ fd: UnsafeMutablePointer<PRFileDesc>, builtInFailure: TLSError?) -> SECStatus {
        let context = PeerCertificateVerification(
            certificates: ConnectionInfoReader.peerCertificates(fd),
            expectedServerName: isServer ? nil : serverName,
            builtInFailure: builtInFailure,
            isServer: isServer
        )
        switch settings.certificateVerifier {
        case .none:
            return SECFailure
        case .synchronous(let decide):
            return apply(decide(context))
        case .asynchronous(let decide):
            deferred.start { [self] in
                let verdict = await decide(context)
                if verdict == .accept { peerCertificatesAccepted.add(1, ordering: .releasing) }
                switch verdict {
                case .accept: return .certificateVerdict(0)
                case .reject(let reason): return .certificateVerdict(reason.code)
                }
            }
            return SECWouldBlock
        }
    }

    private func apply(_ verdict: CertificateVerdict) -> SECStatus {
        switch verdict {
        case .accept:
            peerCertificatesAccepted.add(1, ordering: .releasing)
            return SECSuccess
        case .reject(let reason):
            PORT_SetError(reason.code)
            return SECFailure
        }
    }

    private func verify(_ fd: UnsafeMutablePointer<PRFileDesc>, checkSignature: PRBool, isServer: PRBool) -> SECStatus {
        switch verificationState.withLock({ $0 }) {
        case .deferred:
            PORT_SetError(PRErrorCode(SEC_ERROR_UNTRUSTED_ISSUER.rawValue))
            return SECFailure
        case .none:
            return SECSuccess
        case .nssDefault:
            return SSL_AuthCertificate(UnsafeMutableRawPointer(CERT_GetDefaultCertDB()), fd, checkSignature, isServer)
        case .anchors(let anchors):
            return verifyAgainstAnchors(fd, anchors: anchors, peerIsClient: isServer != PR_FALSE)
        }
    }

    private func verifyAgainstAnchors(_ fd: UnsafeMutablePointer<PRFileDesc>, anchors: TrustAnchors, peerIsClient: Bool) -> SECStatus {
        guard let peer = SSL_PeerCertificate(fd) else {
            PORT_SetError(PRErrorCode(SSL_ERROR_NO_CERTIFICATE.rawValue))
            return SECFailure
        }
        defer { CERT_DestroyCertificate(peer) }

        // A peer certificate that is itself an anchor (a pinned or self-signed
        // certificate) needs no path; it must still be within its validity.
        // Compared in place: no copy of the peer's DER, no anchor list.
        let peerIsAnchor = peer.pointee.derCert.withBytes { peerDER in
            anchors.certificates.contains { $0.derBytes.elementsEqual(peerDER) }
        }
        if peerIsAnchor {
            guard CERT_CheckCertValidTimes(peer, PR_Now(), PR_FALSE) == secCertTimeValid else {
                PORT_SetError(PRErrorCode(SEC_ERROR_EXPIRED_CERTIFICATE.rawValue))
                return SECFailure
            }
            return verifyName(peer, peerIsClient: peerIsClient)
        }

        guard let list = CERT_NewCertList() else { return SECFailure }
        defer { CERT_DestroyCertList(list) }
        do {
            for anchor in try anchors.objects(services: services) {
                try anchor.withPointer("trust anchor") { certificate in
                    if let copy = CERT_DupCertificate(certificate), CERT_AddCertToListTail(list, copy) != SECSuccess {
                        CERT_DestroyCertificate(copy)
                    }
                }
            }
        } catch {
            PORT_SetError(PRErrorCode(SEC_ERROR_UNTRUSTED_ISSUER.rawValue))
            return SECFailure
        }

        var parameters = [CERTValInParam](repeating: CERTValInParam(), count: 4)
        parameters[0].type = cert_pi_trustAnchors
        parameters[0].value.pointer.chain = UnsafePointer(list)
        parameters[1].type = cert_pi_useOnlyTrustAnchors
        parameters[1].value.scalar.b = PR_TRUE
        parameters[2].type = cert_pi_revocationFlags
        parameters[2].value.pointer.revocation = UnsafePointer(CERT_GetClassicOCSPDisabledPolicy())
        parameters[3].type = cert_pi_end
        let usage = SECCertificateUsage(peerIsClient ? certificateUsageSSLClient : certificateUsageSSLServer)
        let verified = parameters.withUnsafeMutableBufferPointer { buffer in
            CERT_PKIXVerifyCert(peer, usage, buffer.baseAddress, nil, nil)
        }
        guard verified == SECSuccess else { return SECFailure }
        return verifyName(peer, peerIsClient: peerIsClient)
    }

    /// A client checks the server's certificate against the name it asked for.
    private func verifyName(_ peer: UnsafeMutablePointer<CERTCertificate>, peerIsClient: Bool) -> SECStatus {
        guard !peerIsClient, let serverName else { return SECSuccess }
        guard CERT_VerifyCertName(peer, serverName) == SECSuccess else {
            PORT_SetError(PRErrorCode(SSL_ERROR_BAD_CERT_DOMAIN.rawValue))
            return SECFailure
        }
        return SECSuccess
    }

    /// NSS's client-auth hook: the fixed identity, or the chooser's answer
    /// (then NSS waits for ``DeferredCallbacks``).
    fileprivate func clientCertificate(
        _ caNames: UnsafeMutablePointer<CERTDistNames>?,
        _ certificateOut: UnsafeMutablePointer<UnsafeMutablePointer<CERTCertificate>?>,
        _ keyOut: UnsafeMutablePointer<UnsafeMutablePointer<SECKEYPrivateKey>?>
    ) -> SECStatus {
        if let choose = settings.clientIdentityChooser {
            let request = ClientCertificateRequest(acceptableIssuers: Self.names(caNames), serverName: serverName)
            deferred.start { .clientIdentity(await choose(request)) }
            return SECWouldBlock
        }
        guard let identity, let (certificate, key) = Self.copies(of: identity) else { return SECFailure }
        certificateOut.pointee = certificate
        keyOut.pointee = key
        return SECSuccess
    }

    /// New references to an identity's certificate and key, which NSS takes
    /// ownership of; nil if either is gone.
    static func copies(of identity: TLSIdentity) -> (UnsafeMutablePointer<CERTCertificate>, UnsafeMutablePointer<SECKEYPrivateKey>)? {
        let material = identity.material
        let certificate = try? material.certificate.withPointer("client certificate") { CERT_DupCertificate($0) }
        let key = try? material.privateKey.withPointer("client key") { SECKEY_CopyPrivateKey($0) }
        guard let certificate = certificate ?? nil, let key = key ?? nil else {
            if let certificate = certificate ?? nil { CERT_DestroyCertificate(certificate) }
            if let key = key ?? nil { SECKEY_DestroyPrivateKey(key) }
            return nil
        }
        return (certificate, key)
    }

    /// The CA names of a CertificateRequest as strings.
    private static func names(_ list: UnsafeMutablePointer<CERTDistNames>?) -> [String] {
        guard let list, let names = list.pointee.names else { return [] }
        return (0..<Int(list.pointee.nnames)).compactMap { index in
            var item = names[index]
            guard let text = CERT_DerNameToAscii(&item) else { return nil }
            defer { PORT_Free(text) }
            return String(cString: text)
        }
    }

    fileprivate static func from(_ argument: UnsafeMutableRawPointer?) -> ConnectionCallbacks? {
        argument.map { Unmanaged<ConnectionCallbacks>.fromOpaque($0).takeUnretainedValue() }
    }
}

// The C entry points. They capture nothing; the connection comes through `arg`.

private let handshakeCompletedCallback: SSLHandshakeCallback = { fd, argument in
    guard let fd, let callbacks = ConnectionCallbacks.from(argument) else { return }
    callbacks.handshakeCompleted(fd)
}

private let alertReceived: SSLAlertCallback = { _, argument, alert in
    guard let alert, let callbacks = ConnectionCallbacks.from(argument) else { return }
    switch alert.pointee.description {
    case 0: // close_notify
        callbacks.closeNotifyReceived.store(true, ordering: .releasing)
    case 100: // no_renegotiation
        callbacks.renegotiationRefused.store(true, ordering: .releasing)
    default:
        break
    }
}

private let alertSent: SSLAlertCallback = { _, argument, alert in
    guard let alert, let callbacks = ConnectionCallbacks.from(argument), alert.pointee.level == 2 else { return }
    callbacks.fatalAlertSent.store(Int(alert.pointee.description), ordering: .releasing)
}

/// Records the SNI name and answers for the identity chosen for it.
private let serverNameReceived: SSLSNISocketConfig = { _, names, count, argument in
    guard let callbacks = ConnectionCallbacks.from(argument),
          let names, count > 0, let data = names.pointee.data,
          names.pointee.len > 0, names.pointee.len <= 255 else { return SSL_SNI_CURRENT_CONFIG_IS_USED }
    let name = String(decoding: UnsafeBufferPointer(start: data, count: Int(names.pointee.len)), as: UTF8.self)
    callbacks.requestedServerName.withLock { $0 = name }
    return callbacks.selectIdentity(for: name)
}

private let authenticateCertificate: SSLAuthCertificate = { argument, fd, checkSignature, isServer in
    guard let fd, let callbacks = ConnectionCallbacks.from(argument) else { return SECFailure }
    return callbacks.authenticate(fd, checkSignature: checkSignature, isServer: isServer)
}

private let provideClientCertificate: SSLGetClientAuthData = { argument, _, caNames, certificateOut, keyOut in
    guard let certificateOut, let keyOut, let callbacks = ConnectionCallbacks.from(argument) else { return SECFailure }
    return callbacks.clientCertificate(caNames, certificateOut, keyOut)
}

private let badCertificateReceived: SSLBadCertHandler = { argument, fd in
    guard let fd, let callbacks = ConnectionCallbacks.from(argument) else { return SECFailure }
    return callbacks.handleBadCertificate(fd)
}
