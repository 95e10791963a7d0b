internal import CNSS
import Logging
import Synchronization

/// A client's answer to a server's certificate request.
extension ConnectionCallbacks {
    /// NSS's client-auth hook: the fixed identity, or the chooser's answer
    /// (then NSS waits for ``DeferredCallbacks``).
    func clientCertificate(
        _ caNames: UnsafeMutablePointer<CERTDistNames>?,
        _ certificateOut: UnsafeMutablePointer<UnsafeMutablePointer<CERTCertificate>?>,
        _ keyOut: UnsafeMutablePointer<UnsafeMutablePointer<SECKEYPrivateKey>?>
    ) -> SECStatus {
        if let choose = settings.clientIdentityChooser {
            let request = ClientCertificateRequest(acceptableIssuers: Self.names(caNames), serverName: serverName)
            deferred.start { .clientIdentity(await choose(request)) }
            return SECWouldBlock
        }
        guard let identity, let (certificate, key) = Self.copies(of: identity) else { return SECFailure }
        certificateOut.pointee = certificate
        keyOut.pointee = key
        return SECSuccess
    }

    /// New references to an identity's certificate and key, which NSS takes
    /// ownership of; nil if either is gone.
    static func copies(of identity: TLSIdentity) -> (UnsafeMutablePointer<CERTCertificate>, UnsafeMutablePointer<SECKEYPrivateKey>)? {
        let material = identity.material
        let certificate = try? material.certificate.withPointer("client certificate") { CERT_DupCertificate($0) }
        let key = try? material.privateKey.withPointer("client key") { SECKEY_CopyPrivateKey($0) }
        guard let certificate = certificate ?? nil, let key = key ?? nil else {
            if let certificate = certificate ?? nil { CERT_DestroyCertificate(certificate) }
            if let key = key ?? nil { SECKEY_DestroyPrivateKey(key) }
            return nil
        }
        return (certificate, key)
    }

    /// The CA names of a CertificateRequest as strings.
    private static func names(_ list: UnsafeMutablePointer<CERTDistNames>?) -> [String] {
        guard let list, let names = list.pointee.names else { return [] }
        return (0..<Int(list.pointee.nnames)).compactMap { index in
            var item = names[index]
            guard let text = CERT_DerNameToAscii(&item) else { return nil }
            defer { PORT_Free(text) }
            return String(cString: text)
        }
    }
}
