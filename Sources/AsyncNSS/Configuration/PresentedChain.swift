internal import CNSS

/// The chain a server sends, exactly as its identity gave it.
///
/// Without one, `SSL_ConfigServerCert` builds the chain itself and adds the
/// root whenever NSS knows it, for instance once any database with that root
/// is open in the process. So the same PEM identity would send two different
/// chains depending on what else was loaded. An identity that came with its
/// chain (PEM, or a PKCS#11 key with a chain file) sends that chain instead.
enum PresentedChain {
    /// Calls `body` with the extra data that makes `SSL_ConfigServerCert`
    /// send `chain` (leaf first), and its size; NSS copies the list.
    static func withServerCertData<Result>(
        _ chain: [TLSCertificate],
        _ body: (UnsafePointer<SSLExtraServerCertData>, UInt32) throws -> Result
    ) rethrows -> Result {
        let items = UnsafeMutablePointer<SECItem>.allocate(capacity: chain.count)
        var copies: [UnsafeMutablePointer<UInt8>] = []
        defer {
            for copy in copies { copy.deallocate() }
            items.deallocate()
        }
        for (index, certificate) in chain.enumerated() {
            let copy = UnsafeMutablePointer<UInt8>.allocate(capacity: max(certificate.derBytes.count, 1))
            copy.initialize(from: certificate.derBytes, count: certificate.derBytes.count)
            copies.append(copy)
            (items + index).initialize(to: SECItem(type: siDERCertBuffer, data: copy, len: UInt32(certificate.derBytes.count)))
        }
        // CERT_DupCertList copies the items into an arena of its own and
        // never reads `arena` of the list it is given.
        var list = CERTCertificateList(certs: items, len: Int32(chain.count), arena: nil)
        return try withUnsafePointer(to: &list) { listPointer in
            var data = SSLExtraServerCertData()
            data.authType = ssl_auth_null
            data.certChain = listPointer
            return try withUnsafePointer(to: &data) { try body($0, UInt32(MemoryLayout<SSLExtraServerCertData>.size)) }
        }
    }
}
