internal import CNSS
#if canImport(Glibc)
import Glibc
#endif

/// A server's Encrypted Client Hello keys: an X25519 key pair and the
/// ECHConfigList that clients encrypt their ClientHello to.
///
/// Publish ``configListBase64`` as the `ech=` value of the site's DNS HTTPS
/// record, and keep the keys (``pemEncoded``) for as long as the record may
/// be cached: a client with an old configuration gets this server's current
/// one back (retry configurations) and tries once more.
///
/// ```swift
/// let keys = try await EncryptedClientHelloKeys.generate(publicName: "public.example.com")
/// try await keys.write(toFile: "ech.pem")   // mode 0600
/// server.encryptedClientHelloKeys = keys
/// ```
public struct EncryptedClientHelloKeys: Sendable {
    let material: ECHKeyMaterial

    /// The name clients send in the clear, in the outer ClientHello. The
    /// server needs a certificate for it too, for clients whose
    /// configuration is out of date.
    public var publicName: String { material.configList.publicName }
    /// The ECHConfigList that clients need (``TLSConfiguration/encryptedClientHelloConfigList``).
    public var configList: [UInt8] { material.configList.bytes }
    /// ``configList`` in base64, as a DNS HTTPS record's `ech=` carries it.
    public var configListBase64: String { Base64.encode(configList) }
    /// The private key (PKCS#8) and the configuration list as PEM: what
    /// ``load(file:)`` reads. Keep it secret, like a TLS private key.
    public var pemEncoded: String {
        PEM.encode(label: "PRIVATE KEY", der: material.privateKeyDER) + PEM.encode(label: "ECHCONFIG", der: configList)
    }

    /// The ECHConfigList in `base64` (a DNS HTTPS record's `ech=` value), checked.
    ///
    /// - Throws: ``TLSError/Kind/invalidConfiguration`` when it is not base64
    ///   or not a list of version 0xfe0d configurations.
    public static func configList(base64: String) throws -> [UInt8] {
        guard let bytes = Base64.decode(Array(base64.utf8)), ECHConfigList(bytes) != nil else {
            throw TLSError(kind: .invalidConfiguration, operation: "reading an ECHConfigList", message: "not the base64 of an ECHConfigList of version 0xfe0d")
        }
        return bytes
    }

    /// Makes a new key pair and its configuration for `publicName`, a DNS
    /// name (not an IP address) that the server has a certificate for.
    public static func generate(publicName: String) async throws -> EncryptedClientHelloKeys {
        let services = try Runtime.shared.services()
        return try await services.blockingPool.run {
            EncryptedClientHelloKeys(material: try ECHKeyMaterial.generate(publicName: publicName, services: services))
        }
    }

    /// Writes ``pemEncoded`` to a new file at `path`, readable by its owner
    /// alone (mode 0600). An existing file is left alone: this throws.
    public func write(toFile path: String) async throws {
        let services = try Runtime.shared.services()
        let bytes = Array(pemEncoded.utf8)
        try await services.blockingPool.run {
            let operation = "writing ECH keys to \(path)"
            let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                throw TLSError(kind: .invalidConfiguration, operation: operation, message: String(cString: strerror(errno)))
            }
            defer { close(descriptor) }
            var written = 0
            while written < bytes.count {
                let count = bytes[written...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
                guard count > 0 else {
                    if count < 0, errno == EINTR { continue }
                    throw TLSError(kind: .invalidConfiguration, operation: operation, message: String(cString: strerror(errno)))
                }
                written += count
            }
        }
    }

    /// Loads keys that ``pemEncoded`` wrote: a `PRIVATE KEY` block and an
    /// `ECHCONFIG` block.
    public static func load(file: String) async throws -> EncryptedClientHelloKeys {
        let services = try Runtime.shared.services()
        return try await services.blockingPool.run {
            let text = String(decoding: try FileContents.read(file, purpose: "the ECH keys"), as: UTF8.self)
            return EncryptedClientHelloKeys(material: try ECHKeyMaterial.load(pem: text, source: file, services: services))
        }
    }
}

/// The NSS objects behind ``EncryptedClientHelloKeys``.
final class ECHKeyMaterial: Sendable {
    let privateKey: PrivateKeyObject
    let publicKey: NSSObject<SECKEYPublicKey>
    let privateKeyDER: [UInt8]
    let configList: ECHConfigList

    private init(privateKey: PrivateKeyObject, publicKey: NSSObject<SECKEYPublicKey>, privateKeyDER: [UInt8], configList: ECHConfigList) {
        self.privateKey = privateKey
        self.publicKey = publicKey
        self.privateKeyDER = privateKeyDER
        self.configList = configList
    }

    /// Blocking: key generation. Run it on the blocking pool.
    static func generate(publicName: String, services: RuntimeServices) throws -> ECHKeyMaterial {
        let operation = "making ECH keys for \(publicName)"
        try checkPublicName(publicName, operation)
        guard let slot = PK11_GetInternalSlot() else { throw TLSError.fromLastNSSError(operation) }
        defer { PK11_FreeSlot(slot) }
        guard let oid = SECOID_FindOIDByTag(SEC_OID_CURVE25519) else { throw TLSError.fromLastNSSError(operation) }
        var parameters = [UInt8(SEC_ASN1_OBJECT_ID), UInt8(oid.pointee.oid.len)] + oid.pointee.oid.bytes
        var publicKey: UnsafeMutablePointer<SECKEYPublicKey>?
        let privateKey = parameters.withUnsafeMutableBufferPointer { buffer -> UnsafeMutablePointer<SECKEYPrivateKey>? in
            var item = SECItem(type: siBuffer, data: buffer.baseAddress, len: UInt32(buffer.count))
            // Not sensitive, so that it can be exported for ``EncryptedClientHelloKeys/pemEncoded``.
            return PK11_GenerateKeyPair(slot, CK_MECHANISM_TYPE(CKM_EC_KEY_PAIR_GEN), &item, &publicKey, PR_FALSE, PR_FALSE, nil)
        }
        guard let privateKey, let publicKey else { throw TLSError.fromLastNSSError(operation) }
        let privateObject = PrivateKeyObject(privateKey: privateKey, services: services)
        let publicObject = NSSObject(publicKey, services: services) { SECKEY_DestroyPublicKey($0) }
        var der = SECItem()
        guard cnss_export_private_key_der(privateKey, &der) == SECSuccess, let data = der.data else { throw TLSError.fromLastNSSError(operation) }
        let pkcs8 = Array(UnsafeBufferPointer(start: data, count: Int(der.len)))
        SECITEM_ZfreeItem(&der, PR_FALSE)
        var output = [UInt8](repeating: 0, count: 1024)
        var length: UInt32 = 0
        let status = output.withUnsafeMutableBufferPointer { buffer -> SECStatus in
            guard let base = buffer.baseAddress else { return SECFailure }
            return cnss_encode_ech_config(UInt8.random(in: 0...255), publicName, publicKey, base, &length, UInt32(buffer.count))
        }
        guard status == SECSuccess, let list = ECHConfigList(Array(output.prefix(Int(length)))) else { throw TLSError.fromLastNSSError(operation) }
        return ECHKeyMaterial(privateKey: privateObject, publicKey: publicObject, privateKeyDER: pkcs8, configList: list)
    }

    /// Blocking: imports a key. Run it on the blocking pool.
    static func load(pem: String, source: String, services: RuntimeServices) throws -> ECHKeyMaterial {
        let operation = "loading ECH keys from \(source)"
        let blocks: [PEMBlock]
        do { blocks = try PEM.parse(pem) } catch {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "not a valid PEM file: \(error)")
        }
        guard let keyBlock = blocks.first(where: { $0.label == "PRIVATE KEY" }), let configBlock = blocks.first(where: { $0.label == "ECHCONFIG" }) else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "it needs a -----BEGIN PRIVATE KEY----- block and a -----BEGIN ECHCONFIG----- block, as EncryptedClientHelloKeys.pemEncoded writes them")
        }
        guard let list = ECHConfigList(configBlock.der) else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "the ECHCONFIG block is not an ECHConfigList of version 0xfe0d")
        }
        guard let key = PrivateKeyImport.pkcs8(keyBlock.der, usage: UInt32(KU_KEY_AGREEMENT), sensitive: false) else { throw TLSError.fromLastNSSError(operation) }
        let privateObject = PrivateKeyObject(privateKey: key, services: services)
        guard let publicKey = SECKEY_ConvertToPublicKey(key) else { throw TLSError.fromLastNSSError(operation) }
        let publicObject = NSSObject(publicKey, services: services) { SECKEY_DestroyPublicKey($0) }
        return ECHKeyMaterial(privateKey: privateObject, publicKey: publicObject, privateKeyDER: keyBlock.der, configList: list)
    }

    /// NSS takes only a DNS name (letters, digits, hyphens, dots) that is not an IP address.
    private static func checkPublicName(_ name: String, _ operation: String) throws {
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        let valid = !name.isEmpty && name.utf8.count <= 253 && labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.utf8.allSatisfy { $0 == UInt8(ascii: "-") || (0x30...0x39).contains($0) || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0) }
        } && NetworkAddress(literal: name, port: 0) == nil && !(labels.last.map { $0.allSatisfy(\.isNumber) } ?? true)
        guard valid else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "the public name must be a DNS name (letters, digits, hyphens and dots), not an IP address: \"\(name)\"")
        }
    }

    /// Sets the keys on a server socket (`SSL_SetServerEchConfigs`, which copies them).
    func install(on fd: UnsafeMutablePointer<PRFileDesc>, _ operation: String) throws {
        let status = try privateKey.withPointer(operation) { privateKey in
            try publicKey.withPointer(operation) { publicKey in
                configList.bytes.withUnsafeBufferPointer { list -> SECStatus in
                    guard let base = list.baseAddress else { return SECFailure }
                    return cnss_set_server_ech_configs(fd, publicKey, privateKey, base, UInt32(list.count))
                }
            }
        }
        guard status == SECSuccess else { throw TLSError.fromLastNSSError("\(operation): setting the ECH keys") }
    }
}
