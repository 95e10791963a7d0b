internal import CNSS

/// Imports an unencrypted PKCS#8 private key into NSS's internal slot, as a
/// session object (nothing is written to a database): PEM identities, the
/// session-ticket key pair of workers, ECH keys.
enum PrivateKeyImport {
    /// The key, or nil with NSS's error set. The copy of `der` handed to
    /// NSS is zeroed afterwards.
    ///
    /// - Parameters:
    ///   - der: The PKCS#8 `PrivateKeyInfo`.
    ///   - usage: The `KU_` bits the key serves.
    ///   - sensitive: Whether NSS refuses to export the key again.
    static func pkcs8(_ der: [UInt8], usage: UInt32, sensitive: Bool = true) -> UnsafeMutablePointer<SECKEYPrivateKey>? {
        guard let slot = PK11_GetInternalSlot() else { return nil }
        defer { PK11_FreeSlot(slot) }
        var bytes = der
        defer { for index in bytes.indices { bytes[index] = 0 } }
        var key: UnsafeMutablePointer<SECKEYPrivateKey>?
        let status = bytes.withUnsafeMutableBufferPointer { buffer in
            var item = SECItem(type: siBuffer, data: buffer.baseAddress, len: UInt32(buffer.count))
            return PK11_ImportDERPrivateKeyInfoAndReturnKey(slot, &item, nil, nil, PR_FALSE, sensitive ? PR_TRUE : PR_FALSE, usage, &key, nil)
        }
        return status == SECSuccess ? key : nil
    }
}
