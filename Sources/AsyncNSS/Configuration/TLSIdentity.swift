/// A certificate chain and its private key: what a server presents, or what a
/// client presents when a server asks for a certificate.
///
/// Load one from PEM files, from an NSS database, or make a self-signed one
/// for development. Loading runs on a thread the library owns, so it never
/// blocks the cooperative pool.
public struct TLSIdentity: Sendable {
    let material: IdentityMaterial
    /// The DER OCSP response a server staples, checked when it was added
    /// (``stapling(ocspResponseFile:issuerCertificateFile:)``).
    let ocspResponse: [UInt8]?

    init(material: IdentityMaterial, ocspResponse: [UInt8]? = nil) {
        self.material = material
        self.ocspResponse = ocspResponse
    }

    /// The certificate chain, leaf first.
    public var certificateChain: [TLSCertificate] { material.chain }

    /// Loads a PEM certificate chain (leaf first) and a PKCS#8 PEM private key
    /// (`-----BEGIN PRIVATE KEY-----`). No NSS database is involved. A server
    /// sends the chain exactly as the file gives it: leave the root out.
    ///
    /// - Throws: ``TLSError/Kind/invalidIdentity`` with the file name and what to
    ///   do when a file cannot be read, holds a SEC1 or PKCS#1 key, or the key
    ///   does not match the certificate.
    public static func pem(certificateChainFile: String, privateKeyFile: String) async throws -> TLSIdentity {
        let services = try Runtime.shared.services()
        return try await services.blockingPool.run {
            let chain = try FileContents.read(certificateChainFile, purpose: "the certificate chain")
            let key = try FileContents.read(privateKeyFile, purpose: "the private key")
            return TLSIdentity(material: try PEMIdentityLoader(services: services).load(
                chain: String(decoding: chain, as: UTF8.self), chainSource: certificateChainFile,
                key: String(decoding: key, as: UTF8.self), keySource: privateKeyFile
            ))
        }
    }

    /// Makes an identity from a PEM certificate chain and a PKCS#8 PEM private key held in memory.
    public static func pem(certificateChain: String, privateKey: String) async throws -> TLSIdentity {
        let services = try Runtime.shared.services()
        return try await services.blockingPool.run {
            TLSIdentity(material: try PEMIdentityLoader(services: services).load(
                chain: certificateChain, chainSource: "the certificate chain",
                key: privateKey, keySource: "the private key"
            ))
        }
    }

    /// Loads the certificate `nickname` and its key from the NSS database in
    /// `directory` (`sql:DIR` or `DIR`), as made by `certutil` and `pk12util`.
    ///
    /// - Parameters:
    ///   - directory: The database directory, `sql:DIR` or `DIR`.
    ///   - nickname: The certificate's nickname (`certutil -L -d DIR` lists them).
    ///   - password: The database password, if it has one. NSS asks
    ///     for it through `PK11_SetPasswordFunc`.
    public static func database(_ directory: String, nickname: String, password: String? = nil) async throws -> TLSIdentity {
        let services = try Runtime.shared.services()
        return try await services.blockingPool.run {
            TLSIdentity(material: try DatabaseIdentityLoader(services: services).load(
                directory: directory, nickname: nickname, password: password
            ))
        }
    }

    /// Uses a private key that stays on a PKCS#11 token (an HSM, a smart card,
    /// SoftHSM2): NSS signs through the module and never reads the key.
    ///
    /// ```swift
    /// let identity = try await TLSIdentity.pkcs11(
    ///     keyURI: "pkcs11:token=web;object=server-key?pin-source=/run/secrets/pin",
    ///     modulePath: "/usr/lib/softhsm/libsofthsm2.so",
    ///     certificateChainFile: "server.pem"
    /// )
    /// ```
    ///
    /// - Parameters:
    ///   - keyURI: An RFC 7512 URI naming the key by `object` (its label), `id`
    ///     or both, and optionally the token by `token`, `manufacturer`,
    ///     `model` or `serial`. Its query may hold `pin-source` (a file),
    ///     `pin-value` and `module-path`.
    ///   - modulePath: The module's shared library; if nil, the URI's `module-path`.
    ///     Each module is loaded once per runtime.
    ///   - certificateChainFile: The PEM chain, leaf first. If nil, the
    ///     certificate on the token with the key's id.
    ///   - pin: The token's PIN; if nil, the URI's `pin-value` or `pin-source`.
    ///     NSS receives it through its password callback; it is never logged.
    /// - Throws: ``TLSError/Kind/invalidIdentity`` when the module does not
    ///   load, no token or key matches (or several keys do), the PIN is wrong or
    ///   missing, or the key does not match the certificate.
    public static func pkcs11(keyURI: String, modulePath: String? = nil, certificateChainFile: String? = nil, pin: String? = nil) async throws -> TLSIdentity {
        let services = try Runtime.shared.services()
        return try await services.blockingPool.run {
            let chain: PKCS11IdentityLoader.Chain = try certificateChainFile.map { file in
                let text = try FileContents.read(file, purpose: "the certificate chain")
                return .pem(String(decoding: text, as: UTF8.self), source: file)
            } ?? .token
            return TLSIdentity(material: try PKCS11IdentityLoader(services: services).load(
                keyURI: keyURI, modulePath: modulePath, chain: chain, pin: pin
            ))
        }
    }

    /// Makes a self-signed identity with an EC P-256 key, whose certificate
    /// names `names` (DNS names or IP addresses) in its subjectAltName and the
    /// first one in its subject CN. For development and tests.
    public static func selfSigned(names: [String] = ["localhost", "127.0.0.1", "::1"]) async throws -> TLSIdentity {
        let services = try Runtime.shared.services()
        return try await services.blockingPool.run {
            TLSIdentity(material: try SelfSignedIdentityMaker(services: services).make(names: names))
        }
    }
}

/// The NSS objects behind a ``TLSIdentity``.
final class IdentityMaterial: Sendable {
    let certificate: CertificateObject
    let privateKey: PrivateKeyObject
    /// Intermediates, kept alive so NSS finds them when it builds the chain to send.
    let intermediates: [CertificateObject]
    let chain: [TLSCertificate]
    /// Whether a server sends `chain` as it is (see ``PresentedChain``), or
    /// lets NSS build the chain from what it knows (database identities).
    let sendsChainAsGiven: Bool
    /// What the identity was loaded from, for error messages.
    let source: String
    /// Identifies this identity in client session-cache keys.
    let serial = SessionCacheKey.nextSerial()

    init(certificate: CertificateObject, privateKey: PrivateKeyObject, intermediates: [CertificateObject], chain: [TLSCertificate], sendsChainAsGiven: Bool, source: String) {
        self.certificate = certificate
        self.privateKey = privateKey
        self.intermediates = intermediates
        self.chain = chain
        self.sendsChainAsGiven = sendsChainAsGiven
        self.source = source
    }

    /// The material of `key` and `certificates` (leaf first), or `nil` when
    /// the key does not belong to the leaf; the caller words that error for
    /// where the key and the chain came from. `certificates` is the chain a
    /// server sends, unless `chainIsComplete` is false (a lone certificate
    /// from a token), where NSS builds the chain.
    static func matching(
        key: PrivateKeyObject,
        certificates: [CertificateObject],
        chainIsComplete: Bool = true,
        source: String,
        operation: String
    ) throws -> IdentityMaterial? {
        guard let leaf = certificates.first else { return nil }
        let matches = try leaf.withPointer(operation) { certificate in
            try key.withPointer(operation) { CertificateImport.keyMatches($0, certificate) }
        }
        guard matches else { return nil }
        return IdentityMaterial(
            certificate: leaf,
            privateKey: key,
            intermediates: Array(certificates.dropFirst()),
            chain: try certificates.map { object in try object.withPointer(operation) { CertificateImport.describe($0) } },
            sendsChainAsGiven: chainIsComplete,
            source: source
        )
    }
}
