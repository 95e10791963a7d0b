internal import CNSS

/// What NSS's text for a refused peer certificate leaves out, or gets
/// wrong for AsyncNSS: which trust was in effect and what to change, the
/// dates of a certificate outside its validity, the name that was checked
/// and the names the certificate has.
///
/// NSS's code and name stay as they are; this sentence goes after NSS's text.
enum VerificationNote {
    static func explain(_ code: PRErrorCode, peer: UnsafeMutablePointer<CERTCertificate>, trust: TLSTrust, checkedName: String?, peerIsClient: Bool) -> String? {
        switch code {
        case PRErrorCode(SEC_ERROR_UNTRUSTED_ISSUER.rawValue), PRErrorCode(SEC_ERROR_UNKNOWN_ISSUER.rawValue),
             PRErrorCode(SEC_ERROR_UNTRUSTED_CERT.rawValue), PRErrorCode(SEC_ERROR_CA_CERT_INVALID.rawValue):
            return untrusted(peer, trust: trust, peerIsClient: peerIsClient)
        case PRErrorCode(SEC_ERROR_EXPIRED_CERTIFICATE.rawValue):
            return outsideValidity(peer)
        case PRErrorCode(SSL_ERROR_BAD_CERT_DOMAIN.rawValue):
            guard let checkedName else { return nil }
            let names = certificateNames(peer)
            return "The name checked was \"\(checkedName)\"; the certificate is for \(names.isEmpty ? "no name" : names.joined(separator: ", ")). Connect with a name the certificate lists, or set TLSConfiguration.serverName (nss-tls connect --server-name)."
        default:
            return nil
        }
    }

    private static func untrusted(_ peer: UnsafeMutablePointer<CERTCertificate>, trust: TLSTrust, peerIsClient: Bool) -> String {
        let subject = peer.pointee.subjectName.map { String(cString: $0) } ?? "?"
        let issuer = peer.pointee.issuerName.map { String(cString: $0) } ?? "?"
        let inEffect: String
        switch trust.source {
        case .systemRoots: inEffect = "the system's root CAs (TLSTrust.systemRoots)"
        case .anchors(let anchors): inEffect = "the \(anchors.certificates.count) trust anchor\(anchors.certificates.count == 1 ? "" : "s") given in the configuration (TLSTrust.certificates or TLSTrust.pem)"
        case .database(let directory): inEffect = "the CAs marked trusted in the NSS database \(directory) (TLSTrust.database)"
        case .insecureNoVerification: inEffect = "no verification"
        }
        let flag = peerIsClient ? "--client-ca FILE" : "--ca FILE"
        return "Nothing was marked untrusted: the certificate \(subject), issued by \(issuer), does not lead to a CA of the trust in effect, \(inEffect). To accept it, add the CA that issued it: TLSTrust.pem(file:) in code, \(flag) with nss-tls."
    }

    private static func outsideValidity(_ peer: UnsafeMutablePointer<CERTCertificate>) -> String? {
        var notBefore: PRTime = 0, notAfter: PRTime = 0
        guard CERT_GetCertTimes(peer, &notBefore, &notAfter) == SECSuccess else { return nil }
        let now = PR_Now()
        if now < notBefore {
            return "The certificate is not valid yet: its validity starts at \(format(notBefore)), and this machine's clock says \(format(now)). (NSS reports that as expired.)"
        }
        if now > notAfter {
            return "The certificate expired at \(format(notAfter)); this machine's clock says \(format(now))."
        }
        return "The peer's own certificate is within its validity (\(format(notBefore)) to \(format(notAfter))): a certificate of its chain is not."
    }

    /// `2026-12-06 03:10:51 UTC`.
    static func format(_ time: PRTime) -> String {
        var exploded = PRExplodedTime()
        PR_ExplodeTime(time, PR_GMTParameters, &exploded)
        func two(_ value: PRInt32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(exploded.tm_year)-\(two(exploded.tm_month + 1))-\(two(exploded.tm_mday)) \(two(exploded.tm_hour)):\(two(exploded.tm_min)):\(two(exploded.tm_sec)) UTC"
    }

    /// The DNS names and IP addresses of the subjectAltName, else the CN.
    static func certificateNames(_ certificate: UnsafeMutablePointer<CERTCertificate>) -> [String] {
        var names: [String] = []
        var extensionValue = SECItem()
        if CERT_FindCertExtension(certificate, Int32(SEC_OID_X509_SUBJECT_ALT_NAME.rawValue), &extensionValue) == SECSuccess {
            defer { SECITEM_FreeItem(&extensionValue, PR_FALSE) }
            if let arena = PORT_NewArena(2048) {
                defer { PORT_FreeArena(arena, PR_FALSE) }
                if let first = CERT_DecodeAltNameExtension(arena, &extensionValue) {
                    var current = first
                    repeat {
                        if let name = describe(current) { names.append(name) }
                        guard let next = CERT_GetNextGeneralName(current) else { break }
                        current = next
                    } while current != first
                }
            }
        }
        if names.isEmpty, let commonName = CERT_GetCommonName(&certificate.pointee.subject) {
            defer { PORT_Free(commonName) }
            names.append("CN=\(String(cString: commonName))")
        }
        return names
    }

    private static func describe(_ name: UnsafeMutablePointer<CERTGeneralName>) -> String? {
        let item = name.pointee.name.other
        guard let data = item.data, item.len > 0 else { return nil }
        let bytes = Array(UnsafeBufferPointer(start: data, count: Int(item.len)))
        switch name.pointee.type {
        case certDNSName:
            return "DNS:" + String(decoding: bytes, as: UTF8.self)
        case certIPAddress where bytes.count == 4:
            return "IP:" + bytes.map(String.init).joined(separator: ".")
        case certIPAddress where bytes.count == 16:
            return "IP:" + stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
        default:
            return nil
        }
    }
}
