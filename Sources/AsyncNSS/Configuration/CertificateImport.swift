internal import CNSS

/// Turning DER into NSS certificates and back.
enum CertificateImport {
    /// Imports DER as a temporary certificate (no database). The caller owns the reference.
    static func temporaryCertificate(_ der: [UInt8], operation: @autoclosure () -> String) throws -> UnsafeMutablePointer<CERTCertificate> {
        guard let certificate = temporaryCertificateIfValid(der) else {
            throw TLSError.fromLastNSSError(operation())
        }
        return certificate
    }

    /// `der` as a temporary certificate, or nil when NSS cannot decode it
    /// (bytes from a peer).
    static func temporaryCertificateIfValid(_ der: [UInt8]) -> UnsafeMutablePointer<CERTCertificate>? {
        var bytes = der
        return bytes.withUnsafeMutableBufferPointer { buffer in
            var item = SECItem(type: siBuffer, data: buffer.baseAddress, len: UInt32(buffer.count))
            return CERT_NewTempCertificate(CERT_GetDefaultCertDB(), &item, nil, PR_FALSE, PR_TRUE)
        }
    }

    /// The DER and subject of an NSS certificate.
    static func describe(_ certificate: UnsafeMutablePointer<CERTCertificate>) -> TLSCertificate {
        let der = certificate.pointee.derCert.bytes
        let subject = certificate.pointee.subjectName.map { String(cString: $0) } ?? ""
        return TLSCertificate(derBytes: der, subject: subject)
    }

    /// Whether `key` is the private half of `certificate`'s public key: signs a
    /// probe with the key and verifies it with the certificate.
    static func keyMatches(_ key: UnsafeMutablePointer<SECKEYPrivateKey>, _ certificate: UnsafeMutablePointer<CERTCertificate>) -> Bool {
        guard let publicKey = CERT_ExtractPublicKey(certificate) else { return false }
        defer { SECKEY_DestroyPublicKey(publicKey) }
        let keyType = SECKEY_GetPublicKeyType(publicKey)
        guard keyType == SECKEY_GetPrivateKeyType(key) else { return false }
        let algorithm = SEC_GetSignatureAlgorithmOidTag(keyType, SEC_OID_SHA256)
        guard algorithm != SEC_OID_UNKNOWN else { return false }
        var probe = Array("AsyncNSS key and certificate check".utf8)
        var signature = SECItem()
        let signed = probe.withUnsafeMutableBufferPointer { buffer in
            SEC_SignData(&signature, buffer.baseAddress, Int32(buffer.count), key, algorithm)
        }
        guard signed == SECSuccess else { return false }
        defer { SECITEM_FreeItem(&signature, PR_FALSE) }
        let verified = probe.withUnsafeMutableBufferPointer { buffer in
            VFY_VerifyData(buffer.baseAddress, Int32(buffer.count), publicKey, &signature, algorithm, nil)
        }
        return verified == SECSuccess
    }
}

extension SECItem {
    /// A copy of the item's bytes.
    var bytes: [UInt8] {
        data.map { Array(UnsafeBufferPointer(start: $0, count: Int(len))) } ?? []
    }

    /// Runs `body` with the item's bytes in place, without copying them.
    func withBytes<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws -> Result) rethrows -> Result {
        try body(UnsafeBufferPointer(start: data, count: data == nil ? 0 : Int(len)))
    }
}
