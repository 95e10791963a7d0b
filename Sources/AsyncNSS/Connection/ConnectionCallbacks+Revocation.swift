internal import CNSS
import Synchronization

/// The revocation checks of ``RevocationPolicy`` that follow a chain's
/// verification: the stapled OCSP response, and the OCSP responder asked from
/// the blocking pool. CRLs are part of the chain's verification itself.
extension ConnectionCallbacks {
    enum RevocationOutcome {
        case passed
        /// Refused with this NSS code (its alert) and a note for the error.
        case refused(PRErrorCode, String)
        /// No usable staple: the certificate's OCSP responder decides.
        case askResponder
    }

    /// On a client, the status of the OCSP response the server stapled, kept
    /// for ``TLSConnectionInfo/stapledOCSPResponse``; nil when there was none.
    func noteStapledResponse(_ fd: UnsafeMutablePointer<PRFileDesc>) -> OCSPStatus? {
        guard !isServer else { return nil }
        var status: OCSPStatus?
        if let responses = SSL_PeerStapledOCSPResponses(fd), responses.pointee.len > 0, let first = responses.pointee.items,
           let peer = SSL_PeerCertificate(fd) {
            status = OCSPResponseCheck.status(of: peer, in: first)
            CERT_DestroyCertificate(peer)
        }
        stapledOCSP.withLock { $0 = status }
        return status
    }

    /// What the policy makes of the staple's status, once the chain verified.
    func revocationOutcome(_ fd: UnsafeMutablePointer<PRFileDesc>, staple: OCSPStatus?) -> RevocationOutcome {
        switch settings.revocation.mode {
        case .off:
            return .passed
        case .crl(let lists):
            guard let (code, note) = lists.uncovered(fd) else { return .passed }
            return .refused(code, note)
        case .stapledOCSP:
            guard let staple else {
                return .refused(PRErrorCode(SSL_ERROR_BAD_CERTIFICATE.rawValue), "The server stapled no OCSP response, and RevocationPolicy.requireStapledOCSP requires one.")
            }
            return outcome(staple)
        case .ocsp:
            switch staple {
            case .good?, .revoked?, .unknown?:
                return staple.map(outcome) ?? .askResponder
            case .expired?, .invalid?, nil:
                return .askResponder
            }
        }
    }

    private func outcome(_ staple: OCSPStatus) -> RevocationOutcome {
        guard let (code, note) = staple.refusal(by: "The server's stapled OCSP response") else { return .passed }
        return .refused(code, note)
    }

    /// Asks the certificate's OCSP responder from the blocking pool while
    /// NSS waits (`SECWouldBlock`), then lets the verifier, if any, decide.
    func askResponderThenVerifier(_ fd: UnsafeMutablePointer<PRFileDesc>) -> SECStatus {
        guard let peer = SSL_PeerCertificate(fd) else {
            PORT_SetError(PRErrorCode(SSL_ERROR_NO_CERTIFICATE.rawValue))
            return SECFailure
        }
        let certificate = CertificateObject(certificate: peer, services: services)
        let context = verification(fd, builtInFailure: nil)
        deferred.start { [self] in
            var context = context
            if let (code, note) = await OCSPResponderQuery.status(of: certificate, timeout: settings.handshakeTimeout, services: services) {
                refusalNote.withLock { $0 = (code, note) }
                var failure = TLSError.fromNSSCode(code, "checking the server's certificate with its OCSP responder")
                failure.message += " " + note
                context.builtInFailure = failure
            }
            return await verdict(context)
        }
        return SECWouldBlock
    }
}
