internal import CNSS

/// Verifies a peer's certificate chain with `CERT_PKIXVerifyCert`, against
/// trust anchors or the trust of every loaded token, with the revocation
/// checks of ``RevocationFlags``. The host name is the caller's to check.
enum PeerChainCheck {
    /// `SECSuccess`, or `SECFailure` with NSS's error set.
    static func verify(
        _ peer: UnsafeMutablePointer<CERTCertificate>,
        anchors: TrustAnchors?,
        peerIsClient: Bool,
        revocation: RevocationFlags.Check,
        services: RuntimeServices
    ) -> SECStatus {
        guard let list = CERT_NewCertList() else { return SECFailure }
        defer { CERT_DestroyCertList(list) }
        if let anchors {
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
        }
        let usage = SECCertificateUsage(peerIsClient ? certificateUsageSSLClient : certificateUsageSSLServer)
        return RevocationFlags.with(revocation) { flags in
            var parameters = [CERTValInParam](repeating: CERTValInParam(), count: 4)
            var count = 0
            if anchors != nil {
                parameters[count].type = cert_pi_trustAnchors
                parameters[count].value.pointer.chain = UnsafePointer(list)
                parameters[count + 1].type = cert_pi_useOnlyTrustAnchors
                parameters[count + 1].value.scalar.b = PR_TRUE
                count += 2
            }
            parameters[count].type = cert_pi_revocationFlags
            parameters[count].value.pointer.revocation = flags
            parameters[count + 1].type = cert_pi_end
            return parameters.withUnsafeMutableBufferPointer { buffer in
                CERT_PKIXVerifyCert(peer, usage, buffer.baseAddress, nil, nil)
            }
        }
    }
}
