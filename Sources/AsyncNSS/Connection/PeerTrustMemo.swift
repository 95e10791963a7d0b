internal import CNSS

/// Ends NSS's repeated trust searches for a peer certificate that is
/// presented again, as by a pool of client connections to one server.
///
/// NSS keeps a peer's certificate in memory while some connection holds it
/// and gives that same certificate to the next handshake that receives the
/// same DER. When it does, if the certificate has no trust record, NSS
/// searches every token for one again (`stan_GetCERTCertificate`,
/// lib/pki/pki3hack.c, NSS 3.87). softoken answers a search by walking every
/// session object of its slot under one lock, and the keys of every open
/// connection live in that slot, about six per connection: each such
/// handshake cost time in proportion to the connections already open.
///
/// After the certificates passed verification, each one held only in memory
/// that still has no trust record gets a record whose only flag is
/// `CERTDB_SEND_WARN`: a legacy database flag that NSS 3.87 only converts to
/// and from trust strings (lib/certdb/certdb.c) and that no verification
/// reads. The record grants nothing and distrusts nothing, so verification
/// treats the certificate as it treats one without a record. An empty record
/// would not do: `CERT_ChangeCertTrust` takes it for no change and stores
/// nothing. The record lives in NSS's in-memory store and goes away with the
/// certificate. Certificates that have a record (a distrust entry, say) and
/// certificates stored on a token are left alone. If a module loaded later
/// brings a record for the same certificate, NSS sees it only once no
/// connection holds the certificate any more.
enum PeerTrustMemo {
    /// Records the neutral trust on the peer's certificates that have none.
    /// Call only once the certificates were accepted.
    static func remember(_ fd: UnsafeMutablePointer<PRFileDesc>) {
        ConnectionInfoReader.forEachPeerCertificate(fd, rememberOne)
    }

    private static func rememberOne(_ certificate: UnsafeMutablePointer<CERTCertificate>) {
        guard certificate.pointee.isperm == PR_FALSE else { return }
        var existing = CERTCertTrust()
        guard CERT_GetCertTrust(certificate, &existing) != SECSuccess else { return }
        var neutral = CERTCertTrust(sslFlags: UInt32(CERTDB_SEND_WARN), emailFlags: 0, objectSigningFlags: 0)
        // A failure leaves the certificate as it was: searched again next time.
        _ = CERT_ChangeCertTrust(CERT_GetDefaultCertDB(), certificate, &neutral)
    }
}
