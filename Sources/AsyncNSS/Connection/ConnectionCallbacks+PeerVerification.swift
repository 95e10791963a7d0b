internal import CNSS
import Logging
import Synchronization

/// Checking the peer's certificate: the configured trust, then the
/// application's verifier, and the error a refusal ends the handshake with.
extension ConnectionCallbacks {
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
    func authenticate(_ fd: UnsafeMutablePointer<PRFileDesc>, checkSignature: PRBool, isServer: PRBool) -> SECStatus {
        let status = verify(fd, checkSignature: checkSignature, isServer: isServer)
        guard status == SECSuccess else { return status }
        // After the chain verified: its anchors are known to NSS by then,
        // and the response's signer is checked against the issuer.
        let staple = noteStapledResponse(fd)
        switch revocationOutcome(fd, staple: staple) {
        case .passed:
            break
        case .refused(let code, let note):
            refusalNote.withLock { $0 = (code, note) }
            PORT_SetError(code)
            return SECFailure
        case .askResponder:
            return askResponderThenVerifier(fd)
        }
        guard settings.certificateVerifier != nil else {
            PeerTrustMemo.remember(fd)
            peerCertificatesAccepted.add(1, ordering: .releasing)
            return SECSuccess
        }
        return runVerifier(fd, builtInFailure: nil)
    }

    /// NSS's bad-certificate hook, after the trust refused the chain: the
    /// verifier, if any, decides; without one the refusal stands.
    func handleBadCertificate(_ fd: UnsafeMutablePointer<PRFileDesc>) -> SECStatus {
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
        // A revocation check that refused the peer left its own note.
        refusalNote.withLock { noted in
            if noted?.0 != code { noted = (code, note) }
        }
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
        let context = verification(fd, builtInFailure: builtInFailure)
        switch settings.certificateVerifier {
        case .none:
            return SECFailure
        case .synchronous(let decide):
            return apply(decide(context))
        case .asynchronous:
            deferred.start { [self] in await verdict(context) }
            return SECWouldBlock
        }
    }

    /// What a ``CertificateVerifier`` is shown about the peer on `fd`.
    func verification(_ fd: UnsafeMutablePointer<PRFileDesc>, builtInFailure: TLSError?) -> PeerCertificateVerification {
        PeerCertificateVerification(
            certificates: ConnectionInfoReader.peerCertificates(fd),
            expectedServerName: isServer ? nil : serverName,
            builtInFailure: builtInFailure,
            isServer: isServer
        )
    }

    /// The verifier's verdict on `context`, in a task, as a deferred result:
    /// without a verifier, the built-in outcome stands.
    func verdict(_ context: PeerCertificateVerification) async -> DeferredCallbacks.Result {
        let verdict: CertificateVerdict
        switch settings.certificateVerifier {
        case .none:
            guard let failure = context.builtInFailure else {
                verdict = .accept
                break
            }
            return .certificateVerdict(failure.nssCode ?? PRErrorCode(SSL_ERROR_BAD_CERTIFICATE.rawValue))
        case .synchronous(let decide):
            verdict = decide(context)
        case .asynchronous(let decide):
            verdict = await decide(context)
        }
        switch verdict {
        case .accept:
            peerCertificatesAccepted.add(1, ordering: .releasing)
            return .certificateVerdict(0)
        case .reject(let reason):
            return .certificateVerdict(reason.code)
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
        case .nssDefault where settings.encryptsClientHello:
            return verifyWithPKIX(fd, anchors: nil, peerIsClient: false, name: Self.nameToCheck(fd, serverName))
        case .anchors(let anchors) where settings.encryptsClientHello:
            return verifyWithPKIX(fd, anchors: anchors, peerIsClient: false, name: Self.nameToCheck(fd, serverName))
        case .nssDefault:
            guard case .crl = settings.revocation.mode else {
                return SSL_AuthCertificate(UnsafeMutableRawPointer(CERT_GetDefaultCertDB()), fd, checkSignature, isServer)
            }
            return verifyWithPKIX(fd, anchors: nil, peerIsClient: isServer != PR_FALSE)
        case .anchors(let anchors):
            return verifyWithPKIX(fd, anchors: anchors, peerIsClient: isServer != PR_FALSE)
        }
    }

    /// The name a client with Encrypted Client Hello checks: the server's,
    /// or the configuration's public name when the server rejected the
    /// configuration (RFC 9849 §6.1.7: NSS then fails the handshake with
    /// its retry configurations, or without).
    private static func nameToCheck(_ fd: UnsafeMutablePointer<PRFileDesc>, _ serverName: String?) -> String? {
        ConnectionInfoReader.rejectedEncryptedClientHelloPublicName(fd) ?? serverName
    }

    /// Verifies the peer's chain with `CERT_PKIXVerifyCert`, against
    /// `anchors` alone or, without them, the trust of every loaded token, and
    /// against the policy's CRLs; then the host name (or `name`).
    private func verifyWithPKIX(_ fd: UnsafeMutablePointer<PRFileDesc>, anchors: TrustAnchors?, peerIsClient: Bool, name: String? = nil) -> SECStatus {
        guard let peer = SSL_PeerCertificate(fd) else {
            PORT_SetError(PRErrorCode(SSL_ERROR_NO_CERTIFICATE.rawValue))
            return SECFailure
        }
        defer { CERT_DestroyCertificate(peer) }

        // A peer certificate that is itself an anchor (a pinned or self-signed
        // certificate) needs no path; it must still be within its validity.
        // Compared in place: no copy of the peer's DER, no anchor list.
        if let anchors, peer.pointee.derCert.withBytes({ peerDER in anchors.certificates.contains { $0.derBytes.elementsEqual(peerDER) } }) {
            guard CERT_CheckCertValidTimes(peer, PR_Now(), PR_FALSE) == secCertTimeValid else {
                PORT_SetError(PRErrorCode(SEC_ERROR_EXPIRED_CERTIFICATE.rawValue))
                return SECFailure
            }
            return verifyName(peer, peerIsClient: peerIsClient, name: name)
        }
        var check = RevocationFlags.Check.none
        if case .crl(let lists) = settings.revocation.mode {
            do { try lists.cache(services: services) } catch {
                PORT_SetError((error as? TLSError)?.nssCode ?? PRErrorCode(SEC_ERROR_CRL_INVALID.rawValue))
                return SECFailure
            }
            check = .cachedCRLs
        }
        guard PeerChainCheck.verify(peer, anchors: anchors, peerIsClient: peerIsClient, revocation: check, services: services) == SECSuccess else {
            return SECFailure
        }
        return verifyName(peer, peerIsClient: peerIsClient, name: name)
    }

    /// A client checks the server's certificate against the name it asked
    /// for, or `name`.
    private func verifyName(_ peer: UnsafeMutablePointer<CERTCertificate>, peerIsClient: Bool, name: String? = nil) -> SECStatus {
        guard !peerIsClient, let serverName = name ?? serverName else { return SECSuccess }
        guard CERT_VerifyCertName(peer, serverName) == SECSuccess else {
            PORT_SetError(PRErrorCode(SSL_ERROR_BAD_CERT_DOMAIN.rawValue))
            return SECFailure
        }
        return SECSuccess
    }
}
