internal import CNSS
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Makes an in-memory self-signed EC P-256 identity, the way `certutil -S -x` does.
struct SelfSignedIdentityMaker {
    let services: RuntimeServices

    /// DER of the OID of the P-256 curve (1.2.840.10045.3.1.7), the key-generation parameter.
    private static let p256Parameters: [UInt8] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]
    private static let validity: PRTime = 365 * 24 * 60 * 60 * 1_000_000

    func make(names: [String]) throws -> IdentityMaterial {
        let operation = "making a self-signed identity"
        guard let commonName = names.first else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "give at least one DNS name or IP address")
        }
        guard let slot = PK11_GetInternalSlot() else { throw TLSError.fromLastNSSError(operation) }
        defer { PK11_FreeSlot(slot) }

        var parameters = Self.p256Parameters
        var publicKey: UnsafeMutablePointer<SECKEYPublicKey>? = nil
        let privateKey = parameters.withUnsafeMutableBufferPointer { buffer in
            var item = SECItem(type: siBuffer, data: buffer.baseAddress, len: UInt32(buffer.count))
            return PK11_GenerateKeyPair(slot, CK_MECHANISM_TYPE(CKM_EC_KEY_PAIR_GEN), &item, &publicKey, PR_FALSE, PR_FALSE, nil)
        }
        guard let privateKey, let publicKey else { throw TLSError.fromLastNSSError("\(operation): generating an EC P-256 key") }
        let keyObject = PrivateKeyObject(privateKey: privateKey, services: services)
        defer { SECKEY_DestroyPublicKey(publicKey) }

        let der = try signedCertificate(commonName: commonName, names: names, publicKey: publicKey, privateKey: privateKey, operation: operation)
        let certificate = try CertificateImport.temporaryCertificate(der, operation: operation)
        let certificateObject = CertificateObject(certificate: certificate, services: services)
        guard CertificateImport.describe(certificate).derBytes == der, CertificateImport.keyMatches(privateKey, certificate) else {
            throw TLSError(kind: .invalidIdentity, operation: operation, message: "NSS returned a different certificate with the same issuer and serial number")
        }
        return IdentityMaterial(
            certificate: certificateObject,
            privateKey: keyObject,
            intermediates: [],
            chain: [CertificateImport.describe(certificate)],
            sendsChainAsGiven: true,
            source: "a self-signed identity for \(names.joined(separator: ", "))"
        )
    }

    private func signedCertificate(
        commonName: String,
        names: [String],
        publicKey: UnsafeMutablePointer<SECKEYPublicKey>,
        privateKey: UnsafeMutablePointer<SECKEYPrivateKey>,
        operation: String
    ) throws -> [UInt8] {
        guard let spki = SECKEY_CreateSubjectPublicKeyInfo(publicKey) else { throw TLSError.fromLastNSSError(operation) }
        defer { SECKEY_DestroySubjectPublicKeyInfo(spki) }
        let escaped = commonName.filter { $0 != "," && $0 != "=" && $0 != "\"" && $0 != "+" }
        guard let subject = CERT_AsciiToName("CN=\(escaped)") else { throw TLSError.fromLastNSSError("\(operation): subject CN=\(escaped)") }
        defer { CERT_DestroyName(subject) }
        guard let request = CERT_CreateCertificateRequest(subject, spki, nil) else { throw TLSError.fromLastNSSError(operation) }
        defer { CERT_DestroyCertificateRequest(request) }
        let now = PR_Now()
        guard let validity = CERT_CreateValidity(now - 24 * 60 * 60 * 1_000_000, now + Self.validity) else { throw TLSError.fromLastNSSError(operation) }
        defer { CERT_DestroyValidity(validity) }
        // Issuer and serial identify a certificate inside NSS: two identities
        // made in the same microsecond must not share a serial.
        var random: UInt64 = 0
        guard PK11_GenerateRandom(withUnsafeMutableBytes(of: &random) { $0.baseAddress?.assumingMemoryBound(to: UInt8.self) }, 8) == SECSuccess else {
            throw TLSError.fromLastNSSError("\(operation): serial number")
        }
        let serial = UInt(truncatingIfNeeded: random & 0x3FFF_FFFF_FFFF_FFFF) | 1
        guard let certificate = CERT_CreateCertificate(serial, subject, validity, request) else { throw TLSError.fromLastNSSError(operation) }
        defer { CERT_DestroyCertificate(certificate) }
        guard let arena = certificate.pointee.arena else { throw TLSError.fromLastNSSError(operation) }

        guard SEC_ASN1EncodeInteger(arena, &certificate.pointee.version, Int(SEC_CERTIFICATE_VERSION_3)) != nil else {
            throw TLSError.fromLastNSSError("\(operation): version")
        }
        try addSubjectAltNames(names, to: certificate, arena: arena, operation: operation)

        let algorithm = SEC_OID_ANSIX962_ECDSA_SHA256_SIGNATURE
        guard SECOID_SetAlgorithmID(arena, &certificate.pointee.signature, algorithm, nil) == SECSuccess else {
            throw TLSError.fromLastNSSError("\(operation): signature algorithm")
        }
        var unsigned = SECItem()
        guard SEC_ASN1EncodeItem(arena, &unsigned, certificate, NSS_Get_CERT_CertificateTemplate(nil, PR_FALSE)) != nil else {
            throw TLSError.fromLastNSSError("\(operation): encoding")
        }
        var signed = SECItem()
        guard SEC_DerSignData(arena, &signed, unsigned.data, Int32(unsigned.len), privateKey, algorithm) == SECSuccess, let data = signed.data else {
            throw TLSError.fromLastNSSError("\(operation): signing")
        }
        return Array(UnsafeBufferPointer(start: data, count: Int(signed.len)))
    }

    private func addSubjectAltNames(_ names: [String], to certificate: UnsafeMutablePointer<CERTCertificate>, arena: UnsafeMutablePointer<PLArenaPool>, operation: String) throws {
        var head: UnsafeMutablePointer<CERTGeneralName>? = nil
        for name in names {
            guard let raw = PORT_ArenaZAlloc(arena, MemoryLayout<CERTGeneralName>.size) else { throw TLSError.fromLastNSSError(operation) }
            let entry = raw.bindMemory(to: CERTGeneralName.self, capacity: 1)
            let bytes: [UInt8]
            if let address = Self.ipAddressBytes(name) {
                entry.pointee.type = certIPAddress
                bytes = address
            } else {
                entry.pointee.type = certDNSName
                bytes = Array(name.utf8)
            }
            guard let storage = PORT_ArenaZAlloc(arena, max(1, bytes.count)) else { throw TLSError.fromLastNSSError(operation) }
            storage.copyMemory(from: bytes, byteCount: bytes.count)
            entry.pointee.name.other = SECItem(type: siBuffer, data: storage.assumingMemoryBound(to: UInt8.self), len: UInt32(bytes.count))
            if let head {
                cnss_general_name_list_append(head, entry)
            } else {
                cnss_general_name_list_init(entry)
                head = entry
            }
        }
        guard let head else { return }
        var encoded = SECItem()
        guard CERT_EncodeAltNameExtension(arena, head, &encoded) == SECSuccess else { throw TLSError.fromLastNSSError("\(operation): subjectAltName") }
        guard let extensions = CERT_StartCertExtensions(certificate) else { throw TLSError.fromLastNSSError(operation) }
        guard CERT_AddExtension(extensions, Int32(SEC_OID_X509_SUBJECT_ALT_NAME.rawValue), &encoded, PR_FALSE, PR_TRUE) == SECSuccess else {
            _ = CERT_FinishExtensions(extensions)
            throw TLSError.fromLastNSSError("\(operation): subjectAltName")
        }
        guard CERT_FinishExtensions(extensions) == SECSuccess else { throw TLSError.fromLastNSSError(operation) }
    }

    /// The network-order bytes of an IPv4 or IPv6 literal, or nil for a DNS name.
    static func ipAddressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}
