internal import CNSS

/// The chain a server sends, exactly as its identity gave it, and the OCSP
/// response it staples.
///
/// Without one, `SSL_ConfigServerCert` builds the chain itself and adds the
/// root whenever NSS knows it, for instance once any database with that root
/// is open in the process. So the same PEM identity would send two different
/// chains depending on what else was loaded. An identity that came with its
/// chain (PEM, or a PKCS#11 key with a chain file) sends that chain instead.
enum PresentedChain {
    /// Calls `body` with the extra data that makes `SSL_ConfigServerCert`
    /// send `chain` (leaf first; `nil` lets NSS build the chain) and staple
    /// `ocspResponse`, and its size; NSS copies both.
    static func withServerCertData<Result>(
        _ chain: [TLSCertificate]?,
        ocspResponse: [UInt8]?,
        _ body: (UnsafePointer<SSLExtraServerCertData>?, UInt32) throws -> Result
    ) rethrows -> Result {
        guard chain != nil || ocspResponse != nil else { return try body(nil, 0) }
        // Every DER buffer is copied into memory that outlives the call.
        let certificateCount = chain?.count ?? 0
        let blobs = (chain ?? []).map(\.derBytes) + (ocspResponse.map { [$0] } ?? [])
        let items = UnsafeMutablePointer<SECItem>.allocate(capacity: max(blobs.count, 1))
        var copies: [UnsafeMutablePointer<UInt8>] = []
        defer {
            for copy in copies { copy.deallocate() }
            items.deallocate()
        }
        for (index, blob) in blobs.enumerated() {
            let copy = UnsafeMutablePointer<UInt8>.allocate(capacity: max(blob.count, 1))
            copy.initialize(from: blob, count: blob.count)
            copies.append(copy)
            (items + index).initialize(to: SECItem(type: index < certificateCount ? siDERCertBuffer : siBuffer, data: copy, len: UInt32(blob.count)))
        }
        // CERT_DupCertList copies the items into an arena of its own and
        // never reads `arena` of the list it is given; NSS copies the
        // response array likewise (SECITEM_DupArray).
        var list = CERTCertificateList(certs: items, len: Int32(certificateCount), arena: nil)
        var responses = SECItemArray(items: items + certificateCount, len: ocspResponse == nil ? 0 : 1)
        return try withUnsafePointer(to: &list) { listPointer in
            try withUnsafePointer(to: &responses) { responsesPointer in
                var data = SSLExtraServerCertData()
                data.authType = ssl_auth_null
                data.certChain = chain == nil ? nil : listPointer
                data.stapledOCSPResponses = ocspResponse == nil ? nil : responsesPointer
                return try withUnsafePointer(to: &data) { try body($0, UInt32(MemoryLayout<SSLExtraServerCertData>.size)) }
            }
        }
    }
}
