/// Which certificates a peer's chain must lead to.
///
/// Clients verify the server's chain and host name by default against the
/// system roots. Servers use it to verify client certificates.
public struct TLSTrust: Sendable {
    enum Source: Sendable {
        case systemRoots
        case anchors(TrustAnchors)
        case database(String)
        case insecureNoVerification
    }

    let source: Source

    /// The system's root CAs through NSS's builtin roots module
    /// (`libnssckbi.so`): Mozilla's root list as shipped with the system's NSS,
    /// or the system CA store where the distribution links that module to p11-kit.
    public static let systemRoots = TLSTrust(source: .systemRoots)

    /// Only these certificates are trusted as anchors (no system roots).
    public static func certificates(_ anchors: [TLSCertificate]) -> TLSTrust {
        TLSTrust(source: .anchors(TrustAnchors(anchors)))
    }

    /// The certificates of a PEM file (a CA bundle) are the only anchors.
    public static func pem(file: String) async throws -> TLSTrust {
        let services = try Runtime.shared.services()
        let anchors = try await services.blockingPool.run { () -> [TLSCertificate] in
            let text = String(decoding: try FileContents.read(file, purpose: "the CA file"), as: UTF8.self)
            return try TrustAnchors.parse(text, source: file)
        }
        return .certificates(anchors)
    }

    /// The CA certificates of a PEM bundle held in memory are the only anchors.
    public static func pem(_ text: String) throws -> TLSTrust {
        .certificates(try TrustAnchors.parse(text, source: "the CA certificates"))
    }

    /// The trust flags of an NSS database (`certutil -A -t "C,,"`), in
    /// `sql:DIR` or `DIR`.
    public static func database(_ directory: String) -> TLSTrust {
        TLSTrust(source: .database(TokenModules.normalised(directory)))
    }

    /// Accepts any certificate for any name.
    ///
    /// - Warning: This disables authentication of the peer; use it only for
    ///   tests and debugging.
    public static let insecureNoVerification = TLSTrust(source: .insecureNoVerification)

    /// Whether this trust verifies the peer at all.
    public var verifiesPeer: Bool {
        if case .insecureNoVerification = source { return false }
        return true
    }
}

/// Trust anchors given as certificates, imported into NSS when first used.
final class TrustAnchors: Sendable {
    let certificates: [TLSCertificate]
    /// Identifies this set of anchors in client session-cache keys.
    let serial = SessionCacheKey.nextSerial()
    private let imported = Locked<[CertificateObject]?>(nil)

    init(_ certificates: [TLSCertificate]) { self.certificates = certificates }

    static func parse(_ text: String, source: String) throws -> [TLSCertificate] {
        let blocks: [PEMBlock]
        do {
            blocks = try PEM.parse(text)
        } catch {
            throw TLSError(kind: .invalidConfiguration, operation: "loading \(source)", message: "not a valid PEM file: \(error)")
        }
        let anchors = blocks.filter { $0.label == "CERTIFICATE" || $0.label == "TRUSTED CERTIFICATE" }
            .map { TLSCertificate(derBytes: $0.der, subject: "") }
        guard !anchors.isEmpty else {
            throw TLSError(kind: .invalidConfiguration, operation: "loading \(source)", message: "no -----BEGIN CERTIFICATE----- block found")
        }
        return anchors
    }

    /// The anchors as NSS certificates, imported once per runtime (again after
    /// an ``NSSRuntime/shutdown()`` released them).
    func objects(services: RuntimeServices) throws -> [CertificateObject] {
        try imported.withLock { imported in
            if let imported, imported.allSatisfy(\.isLive) { return imported }
            let objects = try certificates.enumerated().map { index, certificate in
                CertificateObject(
                    certificate: try CertificateImport.temporaryCertificate(certificate.derBytes, operation: "importing trust anchor \(index + 1)"),
                    services: services
                )
            }
            imported = objects
            return objects
        }
    }
}
