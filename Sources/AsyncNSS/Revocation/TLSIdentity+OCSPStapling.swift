internal import CNSS

extension TLSIdentity {
    /// The DER OCSP response that a server staples to this identity's
    /// certificate, if one was added.
    public var stapledOCSPResponse: [UInt8]? { ocspResponse }

    /// This identity, with the DER OCSP response in `ocspResponseFile` (as
    /// `openssl ocsp -respout` writes it) stapled to its certificate for
    /// every client that asks (`status_request`), TLS 1.2 and 1.3.
    ///
    /// The response is checked as it is loaded: it must be signed by the
    /// certificate's issuer (or a responder the issuer delegated to), be about
    /// this certificate, say it is good, and not have expired. To pick up a
    /// fresh response, load it again and ``TLSListener/reload(_:)``, or watch
    /// the file with ``TLSListener/reloadWhenFilesChange(_:checkingEvery:makeConfiguration:)``.
    ///
    /// - Parameters:
    ///   - ocspResponseFile: The DER OCSP response.
    ///   - issuerCertificateFile: A PEM file with the certificate's issuer,
    ///     when the identity's chain does not hold it (a leaf signed directly
    ///     by a root, for example).
    /// - Throws: ``TLSError/Kind/invalidIdentity`` saying why the response
    ///   does not fit: expired, revoked, unknown, about another certificate,
    ///   or badly signed.
    public func stapling(ocspResponseFile: String, issuerCertificateFile: String? = nil) async throws -> TLSIdentity {
        let services = try Runtime.shared.services()
        return try await services.blockingPool.run { [self] in
            let response = try FileContents.read(ocspResponseFile, purpose: "the OCSP response")
            let issuer = try issuerCertificateFile.map { file in
                let text = String(decoding: try FileContents.read(file, purpose: "the issuer certificate"), as: UTF8.self)
                return try TrustAnchors.parse(text, source: file)[0] // parse throws when it finds none
            }
            return try stapled(response, issuer: issuer, source: ocspResponseFile)
        }
    }

    /// This identity, with `ocspResponse` (DER) stapled to its certificate;
    /// see ``stapling(ocspResponseFile:issuerCertificateFile:)``.
    ///
    /// - Parameters:
    ///   - ocspResponse: The DER OCSP response.
    ///   - issuerCertificate: The certificate's issuer, when the identity's
    ///     chain does not hold it.
    public func stapling(ocspResponse: [UInt8], issuerCertificate: TLSCertificate? = nil) async throws -> TLSIdentity {
        let services = try Runtime.shared.services()
        return try await services.blockingPool.run { [self] in
            try stapled(ocspResponse, issuer: issuerCertificate, source: "the OCSP response")
        }
    }

    /// Checks `response` against the leaf and returns the stapling identity.
    private func stapled(_ response: [UInt8], issuer: TLSCertificate?, source: String) throws -> TLSIdentity {
        let operation = "stapling \(source) to \(material.source)"
        // An issuer given here is known to NSS for the check, as a temporary certificate.
        let importedIssuer = try issuer.map { try CertificateImport.temporaryCertificate($0.derBytes, operation: operation) }
        defer { importedIssuer.map { CERT_DestroyCertificate($0) } }
        let status = try material.certificate.withPointer(operation) { leaf -> OCSPStatus in
            guard let known = CERT_FindCertIssuer(leaf, PR_Now(), certUsageAnyCA) else {
                throw TLSError(kind: .invalidIdentity, operation: operation, message: "the certificate's issuer is not known, so the response's signature cannot be checked; put the issuer in the chain file after the certificate, or pass issuerCertificateFile")
            }
            CERT_DestroyCertificate(known)
            return OCSPResponseCheck.status(of: leaf, in: response)
        }
        guard status == .good else {
            throw TLSError(kind: .invalidIdentity, operation: operation, message: Self.refusal(status))
        }
        return TLSIdentity(material: material, ocspResponse: response)
    }

    private static func refusal(_ status: OCSPStatus) -> String {
        switch status {
        case .good: "the response is good"
        case .revoked: "the response says the certificate is revoked: replace the certificate"
        case .unknown: "the responder does not know this certificate: is the response for another certificate or CA?"
        case .expired: "the response has expired (its nextUpdate has passed): fetch a fresh one from the responder"
        case .invalid(let reason): "the response cannot be used: \(reason)"
        }
    }
}
