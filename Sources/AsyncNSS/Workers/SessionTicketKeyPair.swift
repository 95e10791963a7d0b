internal import CNSS

/// The RSA key pair that wraps the session-ticket keys in a session cache
/// that worker processes share.
///
/// NSS keeps ticket keys (TLS 1.3 tickets, and TLS 1.2 ones) in a shared
/// cache only wrapped with the key pair of `SSL_SetSessionTicketKeyPair`, or
/// with the RSA key of a server certificate. Without one, each process makes
/// its own ticket keys, and a ticket one worker issued does not resume on
/// another. So the parent makes one pair (``WorkerLauncher``) and hands its
/// private key to each worker through a pipe. Every worker installs it; the
/// first one that needs ticket keys makes them and stores them, wrapped, in
/// the shared cache, and the others unwrap them from there.
enum SessionTicketKeyPair {
    /// The PKCS#8 DER of the private key of a new RSA-2048 key pair.
    /// Blocking (key generation): run it on the blocking pool.
    static func generateDER() throws -> [UInt8] {
        let operation = "making the key pair that wraps session-ticket keys"
        guard let slot = PK11_GetInternalSlot() else { throw TLSError.fromLastNSSError(operation) }
        defer { PK11_FreeSlot(slot) }
        var parameters = PK11RSAGenParams(keySizeInBits: 2048, pe: 65537)
        var publicKey: UnsafeMutablePointer<SECKEYPublicKey>?
        // A session key that is not sensitive, so that it can be exported.
        guard let privateKey = PK11_GenerateKeyPair(slot, CK_MECHANISM_TYPE(CKM_RSA_PKCS_KEY_PAIR_GEN), &parameters, &publicKey, PR_FALSE, PR_FALSE, nil) else {
            throw TLSError.fromLastNSSError(operation)
        }
        defer {
            SECKEY_DestroyPrivateKey(privateKey)
            SECKEY_DestroyPublicKey(publicKey)
        }
        var der = SECItem()
        guard cnss_export_private_key_der(privateKey, &der) == SECSuccess, let data = der.data else {
            throw TLSError.fromLastNSSError(operation)
        }
        defer { SECITEM_ZfreeItem(&der, PR_FALSE) }
        return Array(UnsafeBufferPointer(start: data, count: Int(der.len)))
    }

    /// Imports `der` (from ``generateDER()``) and makes it this process's
    /// ticket key pair (`SSL_SetSessionTicketKeyPair`, which keeps copies).
    static func install(_ der: [UInt8]) throws {
        let operation = "installing the key pair that wraps session-ticket keys"
        guard let key = PrivateKeyImport.pkcs8(der, usage: UInt32(KU_KEY_ENCIPHERMENT)) else { throw TLSError.fromLastNSSError(operation) }
        defer { SECKEY_DestroyPrivateKey(key) }
        guard let publicKey = SECKEY_ConvertToPublicKey(key) else { throw TLSError.fromLastNSSError(operation) }
        defer { SECKEY_DestroyPublicKey(publicKey) }
        guard SSL_SetSessionTicketKeyPair(publicKey, key) == SECSuccess else { throw TLSError.fromLastNSSError(operation) }
    }
}
