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
                throw invalid(source, "the key is encrypted; decrypt it with: openssl pkcs8 -in \(source) -out key.pkcs8.pem, or import it into an NSS database with pk12util and use TLSIdentity.database (nss-tls serve --db DIR --nickname NAME)")
            default:
                continue
            }
        }
        throw invalid(source, "no -----BEGIN PRIVATE KEY----- block found")
    }

    private func importKey(_ der: [UInt8], for certificate: UnsafeMutablePointer<CERTCertificate>, source: String) throws -> UnsafeMutablePointer<SECKEYPrivateKey> {
        var usage = UInt32(KU_DIGITAL_SIGNATURE)
        if let publicKey = CERT_ExtractPublicKey(certificate) {
            if SECKEY_GetPublicKeyType(publicKey) == rsaKey { usage |= UInt32(KU_KEY_ENCIPHERMENT) }
            SECKEY_DestroyPublicKey(publicKey)
        }
        guard let key = PrivateKeyImport.pkcs8(der, usage: usage) else {
            let error = TLSError.fromLastNSSError(source)
            let reason = PKCS8KeyAlgorithm.unsupportedName(der).map {
                "this is an \($0) key, which NSS cannot use for TLS; AsyncNSS needs an RSA or EC (P-256, P-384, P-521) key"
            } ?? "the file must hold an unencrypted PKCS#8 RSA or EC (P-256, P-384, P-521) key"
            throw TLSError(kind: .invalidIdentity, operation: "loading the private key \(source)", nssCode: error.nssCode, nssName: error.nssName, message: "\(error.message); \(reason)")
        }
        return key
    }

    private func invalid(_ source: String, _ message: String) -> TLSError {
        TLSError(kind: .invalidIdentity, operation: "loading \(source)", message: message)
    }
}

/// The algorithm of a PKCS#8 `PrivateKeyInfo`, for keys NSS cannot use in TLS.
enum PKCS8KeyAlgorithm {
    /// The OIDs (DER contents) of key types people try and NSS 3.87 refuses.
    private static let unsupported: [[UInt8]: String] = [
        [0x2B, 0x65, 0x70]: "Ed25519",
        [0x2B, 0x65, 0x71]: "Ed448",
        [0x2B, 0x65, 0x6E]: "X25519",
        [0x2B, 0x65, 0x6F]: "X448",
        [0x2A, 0x86, 0x48, 0xCE, 0x38, 0x04, 0x01]: "DSA",
    ]

    /// The name of `der`'s key algorithm if it is one NSS cannot use, else nil.
    static func unsupportedName(_ der: [UInt8]) -> String? {
        // PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm SEQUENCE { OID, ... }, ... }
        var index = 0
        guard enter(0x30, der, &index), skip(0x02, der, &index), enter(0x30, der, &index),
              index + 2 <= der.count, der[index] == 0x06 else { return nil }
        let length = Int(der[index + 1])
        guard length < 0x80, index + 2 + length <= der.count else { return nil }
        return unsupported[Array(der[(index + 2)..<(index + 2 + length)])]
    }

    /// Moves `index` past the tag and length of a `tag` element, into its contents.
    private static func enter(_ tag: UInt8, _ der: [UInt8], _ index: inout Int) -> Bool {
        guard let length = header(tag, der, &index) else { return false }
        return index + length <= der.count
    }

    /// Moves `index` past a whole `tag` element.
    private static func skip(_ tag: UInt8, _ der: [UInt8], _ index: inout Int) -> Bool {
        guard let length = header(tag, der, &index), index + length <= der.count else { return false }
        index += length
        return true
    }

    private static func header(_ tag: UInt8, _ der: [UInt8], _ index: inout Int) -> Int? {
        guard index + 2 <= der.count, der[index] == tag else { return nil }
        let first = Int(der[index + 1])
        index += 2
        if first < 0x80 { return first }
        let count = first & 0x7F
        guard count >= 1, count <= 3, index + count <= der.count else { return nil }
        let length = der[index..<(index + count)].reduce(0) { $0 << 8 | Int($1) }
        index += count
        return length
    }
}
