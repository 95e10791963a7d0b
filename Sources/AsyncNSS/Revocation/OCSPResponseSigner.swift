internal import CNSS

/// Finds who signed an OCSP response and checks the signature, trusting the
/// certificate's issuer as given instead of asking NSS's trust database.
///
/// NSS's `CERT_VerifyOCSPResponseSignature` accepts a signer only if NSS's
/// own trust settings make it valid, so it refuses every response whose CA is
/// trusted through ``TLSTrust/certificates(_:)`` alone (or not at all, as on
/// a server checking its own staple): `SEC_ERROR_OCSP_INVALID_SIGNING_CERT`.
/// Here the signer is the issuer itself, or a certificate carried in the
/// response that the issuer signed, that is valid now and that has the
/// OCSPSigning extended key usage (RFC 6960 §4.2.2.2). Whether that signer may
/// answer for the certificate is then NSS's check, in
/// `CERT_GetOCSPStatusForCertID`.
enum OCSPResponseSigner {
    /// The signer's certificate (the caller destroys it), or nil with NSS's
    /// error set.
    static func signer(of response: [UInt8], issuer: UnsafeMutablePointer<CERTCertificate>) -> UnsafeMutablePointer<CERTCertificate>? {
        guard let parts = SignedParts(response) else {
            PORT_SetError(PRErrorCode(SEC_ERROR_OCSP_MALFORMED_RESPONSE.rawValue))
            return nil
        }
        guard let issuerKey = CERT_ExtractPublicKey(issuer) else { return nil }
        defer { SECKEY_DestroyPublicKey(issuerKey) }
        if parts.verify(with: issuerKey) { return CERT_DupCertificate(issuer) }
        for der in parts.certificates {
            guard let candidate = CertificateImport.temporaryCertificateIfValid(Array(der)) else { continue }
            if isDelegatedResponder(candidate, issuerKey: issuerKey), let key = CERT_ExtractPublicKey(candidate) {
                defer { SECKEY_DestroyPublicKey(key) }
                if parts.verify(with: key) { return candidate }
            }
            CERT_DestroyCertificate(candidate)
        }
        PORT_SetError(PRErrorCode(SEC_ERROR_OCSP_BAD_SIGNATURE.rawValue))
        return nil
    }

    private static func isDelegatedResponder(_ candidate: UnsafeMutablePointer<CERTCertificate>, issuerKey: UnsafeMutablePointer<SECKEYPublicKey>) -> Bool {
        guard candidate.pointee.nsCertType & UInt32(EXT_KEY_USAGE_STATUS_RESPONDER) != 0,
              CERT_CheckCertValidTimes(candidate, PR_Now(), PR_FALSE) == secCertTimeValid else { return false }
        return CERT_VerifySignedDataWithPublicKey(&candidate.pointee.signatureWrap, issuerKey, nil) == SECSuccess
    }

    /// The signed part of a BasicOCSPResponse, its algorithm and signature,
    /// and the certificates it carries.
    private struct SignedParts {
        let bytes: [UInt8]
        let signedData: Range<Int>
        let algorithm: Range<Int>
        let signature: Range<Int>
        let certificates: [ArraySlice<UInt8>]

        init?(_ response: [UInt8]) {
            // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED,
            //   responseBytes [0] EXPLICIT SEQUENCE { responseType OID, response OCTET STRING } }
            var outer = DERReader(response[...])
            guard let envelope = outer.next(tagged: 0x30) else { return nil }
            var fields = DERReader(envelope.content)
            guard fields.next(tagged: 0x0a) != nil,
                  let explicit = fields.next(tagged: 0xa0) else { return nil }
            var wrapper = DERReader(explicit.content)
            guard let responseBytes = wrapper.next(tagged: 0x30) else { return nil }
            var typed = DERReader(responseBytes.content)
            guard typed.next(tagged: 0x06) != nil, let octets = typed.next(tagged: 0x04) else { return nil }
            // BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm,
            //   signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
            var basicReader = DERReader(octets.content)
            guard let basic = basicReader.next(tagged: 0x30) else { return nil }
            var parts = DERReader(basic.content)
            guard let tbs = parts.next(tagged: 0x30),
                  let algorithm = parts.next(tagged: 0x30),
                  let signature = parts.next(tagged: 0x03),
                  signature.content.count >= 2, signature.content.first == 0 else { return nil }
            var certificates: [ArraySlice<UInt8>] = []
            if let certs = parts.next(tagged: 0xa0) {
                var list = DERReader(certs.content)
                guard let sequence = list.next(tagged: 0x30) else { return nil }
                var each = DERReader(sequence.content)
                while !each.isAtEnd {
                    guard let certificate = each.next(tagged: 0x30) else { return nil }
                    certificates.append(certificate.encoded)
                }
            }
            self.bytes = response
            self.signedData = tbs.encoded.startIndex..<tbs.encoded.endIndex
            self.algorithm = algorithm.encoded.startIndex..<algorithm.encoded.endIndex
            // The BIT STRING's first content byte counts unused bits: 0 here.
            self.signature = signature.content.startIndex + 1..<signature.content.endIndex
            self.certificates = certificates
        }

        /// Whether `key` made the signature over the signed part.
        func verify(with key: UnsafeMutablePointer<SECKEYPublicKey>) -> Bool {
            guard let arena = PORT_NewArena(1024) else { return false }
            defer { PORT_FreeArena(arena, PR_FALSE) }
            var copy = bytes
            return copy.withUnsafeMutableBufferPointer { buffer -> Bool in
                guard let base = buffer.baseAddress else { return false }
                var algorithmDER = SECItem(type: siBuffer, data: base + algorithm.lowerBound, len: UInt32(algorithm.count))
                var signed = CERTSignedData()
                guard cnss_decode_algorithm_id(arena, &signed.signatureAlgorithm, &algorithmDER) == SECSuccess else { return false }
                signed.data = SECItem(type: siBuffer, data: base + signedData.lowerBound, len: UInt32(signedData.count))
                // CERTSignedData counts the signature in bits.
                signed.signature = SECItem(type: siBuffer, data: base + signature.lowerBound, len: UInt32(signature.count * 8))
                return CERT_VerifySignedDataWithPublicKey(&signed, key, nil) == SECSuccess
            }
        }
    }
}
