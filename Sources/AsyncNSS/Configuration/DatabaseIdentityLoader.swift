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
            try services.modules.logins.logIn(slot, secret: password, operation: operation, messages: .init(
                missing: "the database is protected by a password; pass it as `password:` (nss-tls: --db-password)",
                wrong: "wrong database password?"
            ))
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
            sendsChainAsGiven: false,
            source: "\(nickname) in \(location)"
        )
    }
}
