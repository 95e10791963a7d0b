internal import CNSS

/// Checks a DER OCSP response against one certificate with NSS's OCSP
/// functions: decode, the response status, the signature (by the issuer or a
/// responder the issuer delegated to), then the single response for the
/// certificate's ID at the current time. The signature is checked by
/// ``OCSPResponseSigner``, against the issuer as given.
///
/// NSS finds the certificate's issuer among the certificates it knows
/// (`CERT_FindCertIssuer`): a peer's chain, an identity's intermediates, or a
/// certificate imported for the check.
enum OCSPResponseCheck {
    /// The status `response` gives `certificate` now. Reads no file and no
    /// network; the signature check costs one or two verifications.
    static func status(of certificate: UnsafeMutablePointer<CERTCertificate>, in response: [UInt8]) -> OCSPStatus {
        var bytes = response
        let decoded = bytes.withUnsafeMutableBufferPointer { buffer in
            var item = SECItem(type: siBuffer, data: buffer.baseAddress, len: UInt32(buffer.count))
            return CERT_DecodeOCSPResponse(&item)
        }
        guard let decoded else { return invalid() }
        defer { CERT_DestroyOCSPResponse(decoded) }
        guard CERT_GetOCSPResponseStatus(decoded) == SECSuccess else { return invalid() }
        let now = PR_Now()
        guard let certificateID = CERT_CreateOCSPCertID(certificate, now) else { return invalid() }
        defer { _ = CERT_DestroyOCSPCertID(certificateID) }
        guard let issuer = CERT_FindCertIssuer(certificate, now, certUsageAnyCA) else { return invalid() }
        defer { CERT_DestroyCertificate(issuer) }
        guard let signer = OCSPResponseSigner.signer(of: response, issuer: issuer) else { return invalid() }
        defer { CERT_DestroyCertificate(signer) }
        guard CERT_GetOCSPStatusForCertID(CERT_GetDefaultCertDB(), decoded, certificateID, signer, now) == SECSuccess else {
            return classify(PR_GetError())
        }
        return .good
    }

    /// ``status(of:in:)`` for a response NSS holds (a stapled one).
    static func status(of certificate: UnsafeMutablePointer<CERTCertificate>, in item: UnsafePointer<SECItem>) -> OCSPStatus {
        guard let data = item.pointee.data else { return invalid(PRErrorCode(SEC_ERROR_OCSP_MALFORMED_RESPONSE.rawValue)) }
        return status(of: certificate, in: Array(UnsafeBufferPointer(start: data, count: Int(item.pointee.len))))
    }

    private static func classify(_ code: PRErrorCode) -> OCSPStatus {
        switch code {
        case PRErrorCode(SEC_ERROR_REVOKED_CERTIFICATE.rawValue): .revoked
        case PRErrorCode(SEC_ERROR_OCSP_UNKNOWN_CERT.rawValue): .unknown
        case PRErrorCode(SEC_ERROR_OCSP_OLD_RESPONSE.rawValue): .expired
        default: invalid(code)
        }
    }

    private static func invalid(_ code: PRErrorCode = PR_GetError()) -> OCSPStatus {
        let error = TLSError.fromNSSCode(code, "checking an OCSP response")
        return .invalid(reason: "\(error.nssName ?? "error \(code)"): \(error.message)")
    }
}

extension OCSPStatus {
    /// The NSS code (its alert) and the note with which a client refuses a
    /// certificate for this status, said by `source` (the staple, or the
    /// responder); nil for `good`.
    func refusal(by source: String) -> (PRErrorCode, String)? {
        switch self {
        case .good: nil
        case .revoked: (PRErrorCode(SEC_ERROR_REVOKED_CERTIFICATE.rawValue), "\(source) says the certificate is revoked.")
        case .unknown: (PRErrorCode(SEC_ERROR_OCSP_UNKNOWN_CERT.rawValue), "\(source) says the responder does not know the certificate.")
        case .expired: (PRErrorCode(SEC_ERROR_OCSP_OLD_RESPONSE.rawValue), "\(source) has expired: its nextUpdate has passed.")
        case .invalid(let reason): (PRErrorCode(SEC_ERROR_OCSP_MALFORMED_RESPONSE.rawValue), "\(source) cannot be used: \(reason).")
        }
    }
}
