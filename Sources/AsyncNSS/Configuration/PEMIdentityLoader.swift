internal import CNSS

/// Loads a ``TLSIdentity`` from a PEM chain and a PKCS#8 PEM key, without a database.
struct PEMIdentityLoader {
    let services: RuntimeServices

    func load(chain chainText: String, chainSource: String, key keyText: String, keySource: String) throws -> IdentityMaterial {
        let objects = try certificates(chainText, source: chainSource)
        let keyDER = try privateKeyBlock(keyText, source: keySource)
        guard let leaf = objects.first else {
            throw invalid(chainSource, "no certificate found")
        }

        let key = try leaf.withPointer(chainSource) { certificate in
            try importKey(keyDER, for: certificate, source: keySource)
        }
        let keyObject = PrivateKeyObject(privateKey: key, services: services)
        let material = try IdentityMaterial.matching(key: keyObject, certificates: objects, source: "\(chainSource) and \(keySource)", operation: chainSource)
        guard let material else {
            throw invalid(keySource, "the private key does not match the certificate in \(chainSource); check that both files belong to the same identity (compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`)")
        }
        return material
    }

    /// The certificates of a PEM chain, leaf first, as temporary NSS certificates.
    func certificates(_ text: String, source: String) throws -> [CertificateObject] {
        try certificateBlocks(text, source: source).enumerated().map { index, der in
            let certificate = try CertificateImport.temporaryCertificate(der, operation: "\(source): certificate \(index + 1)")
            return CertificateObject(certificate: certificate, services: services)
        }
    }

    private func certificateBlocks(_ text: String, source: String) throws -> [[UInt8]] {
        let blocks: [PEMBlock]
        do {
            blocks = try PEM.parse(text)
        } catch {
            throw invalid(source, "not a valid PEM file: \(error)")
        }
        let certificates = blocks.filter { $0.label == "CERTIFICATE" || $0.label == "TRUSTED CERTIFICATE" }.map(\.der)
        guard !certificates.isEmpty else {
            throw invalid(source, "no -----BEGIN CERTIFICATE----- block found; the file must hold the certificate chain in PEM, leaf first")
        }
        return certificates
    }

    private func privateKeyBlock(_ text: String, source: String) throws -> [UInt8] {
        let blocks: [PEMBlock]
        do {
            blocks = try PEM.parse(text)
        } catch {
            throw invalid(source, "not a valid PEM file: \(error)")
        }
        for block in blocks {
            switch block.label {
            case "PRIVATE KEY":
                return block.der
            case "EC PRIVATE KEY", "RSA PRIVATE KEY":
                let format = block.label == "EC PRIVATE KEY" ? "SEC1" : "PKCS#1"
                throw invalid(source, "this is a \(format) key (\(block.label)); AsyncNSS needs PKCS#8. Convert it with: openssl pkcs8 -topk8 -nocrypt -in \(source) -out key.pkcs8.pem")
            case "ENCRYPTED PRIVATE KEY":
                throw invalid(source, "the key is encrypted; decrypt it with: openssl pkcs8 -in \(source) -out key.pkcs8.pem, or import it into an NSS database with pk12util and use TLSIdentity.database")
            default:
                continue
            }
        }
        throw invalid(source, "no -----BEGIN PRIVATE KEY----- block found")
    }

    private func importKey(_ der: [UInt8], for certificate: UnsafeMutablePointer<CERTCertificate>, source: String) throws -> UnsafeMutablePointer<SECKEYPrivateKey> {
        guard let slot = PK11_GetInternalSlot() else {
            throw TLSError.fromLastNSSError("\(source): opening the internal key slot")
        }
        defer { PK11_FreeSlot(slot) }
        var usage = UInt32(KU_DIGITAL_SIGNATURE)
        if let publicKey = CERT_ExtractPublicKey(certificate) {
            if SECKEY_GetPublicKeyType(publicKey) == rsaKey { usage |= UInt32(KU_KEY_ENCIPHERMENT) }
            SECKEY_DestroyPublicKey(publicKey)
        }
        var bytes = der
        var key: UnsafeMutablePointer<SECKEYPrivateKey>? = nil
        let status = bytes.withUnsafeMutableBufferPointer { buffer in
            var item = SECItem(type: siBuffer, data: buffer.baseAddress, len: UInt32(buffer.count))
            return PK11_ImportDERPrivateKeyInfoAndReturnKey(slot, &item, nil, nil, PR_FALSE, PR_TRUE, usage, &key, nil)
        }
        guard status == SECSuccess, let key else {
            let error = TLSError.fromLastNSSError(source)
            throw TLSError(kind: .invalidIdentity, operation: "loading the private key \(source)", nssCode: error.nssCode, nssName: error.nssName, message: "\(error.message); the file must hold an unencrypted PKCS#8 key")
        }
        return key
    }

    private func invalid(_ source: String, _ message: String) -> TLSError {
        TLSError(kind: .invalidIdentity, operation: "loading \(source)", message: message)
    }
}
