internal import CNSS

/// Loads a ``TLSIdentity`` from an NSS database (`certutil`, `pk12util`).
struct DatabaseIdentityLoader {
    let services: RuntimeServices

    func load(directory: String, nickname: String, password: String?) throws -> IdentityMaterial {
        let location = TokenModules.normalised(directory)
        let operation = "loading \(nickname) from the NSS database \(location)"
        let tokenName = try services.modules.openDatabase(location)
        let source = PasswordSource(password ?? "")

        try services.modules.withDatabaseSlot(location) { slot in
            guard PK11_NeedLogin(slot) != PR_FALSE else { return }
            if PK11_IsLoggedIn(slot, nil) != PR_FALSE {
                // Unlocked by an earlier load: a password given now must still be right.
                guard let password else { return }
                guard PK11_CheckUserPassword(slot, password) == SECSuccess else {
                    throw TLSError.fromLastNSSError(operation).withHint("wrong database password?")
                }
                return
            }
            guard password != nil else {
                throw TLSError(kind: .invalidIdentity, operation: operation, message: "the database is protected by a password; pass it as `password:` (nss-tls: --db-password)")
            }
            let status = source.withArgument { PK11_Authenticate(slot, PR_TRUE, $0) }
            guard status == SECSuccess else {
                throw TLSError.fromLastNSSError(operation).withHint("wrong database password?")
            }
        }

        let certificate = source.withArgument { argument in
            PK11_FindCertFromNickname("\(tokenName):\(nickname)", argument)
        }
        guard let certificate else {
            throw TLSError(kind: .invalidIdentity, operation: operation, message: "no certificate with this nickname; list them with: certutil -L -d \(location)")
        }
        let certificateObject = CertificateObject(certificate: certificate, services: services)
        let key = source.withArgument { PK11_FindKeyByAnyCert(certificate, $0) }
        guard let key else {
            throw TLSError(kind: .invalidIdentity, operation: operation, message: "the database has the certificate but not its private key; import the key with pk12util, or give the database password")
        }
        let keyObject = PrivateKeyObject(privateKey: key, services: services)
        return IdentityMaterial(
            certificate: certificateObject,
            privateKey: keyObject,
            intermediates: [],
            chain: [CertificateImport.describe(certificate)],
            source: "\(nickname) in \(location)"
        )
    }
}
