internal import CNSS

/// Loads a ``TLSIdentity`` whose private key stays on a PKCS#11 token (an
/// HSM, a smart card, SoftHSM2): NSS signs with it through the module, and
/// the key's bytes are never read.
struct PKCS11IdentityLoader {
    let services: RuntimeServices

    /// Where the certificate chain comes from.
    enum Chain {
        /// A PEM chain, leaf first, and where it came from (for messages).
        case pem(String, source: String)
        /// The certificate that sits on the token next to the key.
        case token
    }

    func load(keyURI text: String, modulePath: String?, chain: Chain, pin: String?) throws -> IdentityMaterial {
        let uri = try PKCS11KeyURI.parse(text)
        let operation = "loading the key \(uri.redactedDescription)"
        guard let modulePath = modulePath ?? uri.modulePath else {
            throw TLSError(kind: .invalidIdentity, operation: operation, message: "no PKCS#11 module; pass modulePath (nss-tls: --pkcs11-module) or add ?module-path=… to the URI")
        }
        let pin = try pin ?? uri.pinValue ?? uri.pinSource.map(Self.readPIN)
        let source = PasswordSource(pin ?? "")

        let key = try services.modules.withModuleSlots(modulePath) { slots in
            // Present, initialised tokens (SoftHSM2 always offers an empty
            // one). PK11_GetTokenInfo asks the module: once per slot.
            let usable = slots.filter { PK11_IsPresent($0) != PR_FALSE }
                .map { (slot: $0, info: Self.tokenInfo($0)) }
                .filter(\.info.initialized)
            let tokens = usable.filter { uri.matchesToken($0.info) }.map(\.slot)
            guard !tokens.isEmpty else {
                let labels = usable.map(\.info.label)
                throw TLSError(kind: .invalidIdentity, operation: operation, message: "no token of \(modulePath) matches; its tokens: \(labels.isEmpty ? "none" : labels.joined(separator: ", "))")
            }
            // A URI that names no token searches them all; one that refuses
            // the PIN does not hide the key on another.
            var found: [UnsafeMutablePointer<SECKEYPrivateKey>] = []
            var loginError: (any Error)?
            for slot in tokens {
                do {
                    try logIn(slot, pin: pin, operation: operation)
                } catch {
                    loginError = loginError ?? error
                    continue
                }
                found += matchingKeys(in: slot, uri: uri, source: source)
            }
            if found.isEmpty, let loginError { throw loginError }
            guard found.count == 1, let key = found.first else {
                found.forEach { SECKEY_DestroyPrivateKey($0) }
                let message = found.isEmpty
                    ? "no private key with this label and id on the token; list them with: p11tool --list-privkeys --login \"pkcs11:token=…\""
                    : "\(found.count) private keys match; add object= or id= to name one"
                throw TLSError(kind: .invalidIdentity, operation: operation, message: message)
            }
            return key
        }
        let keyObject = PrivateKeyObject(privateKey: key, services: services)

        let certificates: [CertificateObject]
        let chainSource: String
        let chainIsComplete: Bool
        switch chain {
        case .pem(let text, let source):
            certificates = try PEMIdentityLoader(services: services).certificates(text, source: source)
            chainSource = source
            chainIsComplete = true
        case .token:
            guard let certificate = PK11_GetCertFromPrivateKey(key) else {
                throw TLSError(kind: .invalidIdentity, operation: operation, message: "the token has the key but no certificate with its id; give the certificate chain as a PEM file")
            }
            certificates = [CertificateObject(certificate: certificate, services: services)]
            chainSource = "the token"
            chainIsComplete = false
        }
        guard !certificates.isEmpty else {
            throw TLSError(kind: .invalidIdentity, operation: operation, message: "no certificate found in \(chainSource)")
        }
        let material = try IdentityMaterial.matching(key: keyObject, certificates: certificates, chainIsComplete: chainIsComplete, source: "\(uri.redactedDescription) and \(chainSource)", operation: operation)
        guard let material else {
            throw TLSError(kind: .invalidIdentity, operation: operation, message: "the key on the token does not match the certificate in \(chainSource)")
        }
        return material
    }

    private func logIn(_ slot: OpaquePointer, pin: String?, operation: String) throws {
        try services.modules.logins.logIn(slot, secret: pin, operation: operation, messages: .init(
            missing: "the token needs a PIN; pass pin:, or add ?pin-source=FILE to the URI (nss-tls: --pkcs11-pin-file)",
            wrong: "wrong PIN?"
        ))
    }

    /// The private keys on `slot` whose label and id the URI names; the caller owns them.
    private func matchingKeys(in slot: OpaquePointer, uri: PKCS11KeyURI, source: PasswordSource) -> [UnsafeMutablePointer<SECKEYPrivateKey>] {
        guard let list = source.withArgument({ PK11_ListPrivKeysInSlot(slot, nil, $0) }) else { return [] }
        defer { SECKEY_DestroyPrivateKeyList(list) }
        var keys: [UnsafeMutablePointer<SECKEYPrivateKey>] = []
        var node = cnss_private_key_list_head(list)
        while cnss_private_key_list_end(node, list) == 0 {
            if let key = node.pointee.key, uri.matchesKey(label: Self.label(key), id: Self.identifier(key)),
               let copy = SECKEY_CopyPrivateKey(key) {
                keys.append(copy)
            }
            node = cnss_private_key_list_next(node)
        }
        return keys
    }

    private static func label(_ key: UnsafeMutablePointer<SECKEYPrivateKey>) -> String? {
        guard let nickname = PK11_GetPrivateKeyNickname(key) else { return nil }
        defer { PORT_Free(nickname) }
        return String(cString: nickname)
    }

    private static func identifier(_ key: UnsafeMutablePointer<SECKEYPrivateKey>) -> [UInt8]? {
        guard let item = PK11_GetLowLevelKeyIDForPrivateKey(key) else { return nil }
        defer { SECITEM_FreeItem(item, PR_TRUE) }
        return item.pointee.bytes
    }

    /// The token's label, manufacturer, model and serial, without the blanks
    /// PKCS#11 pads them with.
    static func tokenInfo(_ slot: OpaquePointer) -> TokenInfo {
        var info = CK_TOKEN_INFO()
        guard PK11_GetTokenInfo(slot, &info) == SECSuccess else {
            return TokenInfo(label: "", manufacturer: "", model: "", serial: "", initialized: false)
        }
        func text<T>(_ field: T) -> String {
            withUnsafeBytes(of: field) { bytes in
                String(decoding: bytes, as: UTF8.self).trimmingTrailing { $0 == " " || $0 == "\0" }
            }
        }
        return TokenInfo(
            label: text(info.label), manufacturer: text(info.manufacturerID), model: text(info.model),
            serial: text(info.serialNumber), initialized: info.flags & CK_FLAGS(CKF_TOKEN_INITIALIZED) != 0
        )
    }

    /// The `CK_TOKEN_INFO` fields a URI matches on, and whether the token was initialised.
    struct TokenInfo {
        var label: String
        var manufacturer: String
        var model: String
        var serial: String
        var initialized: Bool
    }

    /// The PIN in a `pin-source` file (`file:///path` or a path), without its final newline.
    static func readPIN(_ location: String) throws -> String {
        let path = location.hasPrefix("file://") ? String(location.dropFirst("file://".count)) : location
        let bytes = try FileContents.read(path, purpose: "the PKCS#11 PIN")
        return String(decoding: bytes, as: UTF8.self).trimmingTrailing { $0 == "\n" || $0 == "\r" }
    }
}

private extension PKCS11KeyURI {
    func matchesToken(_ info: PKCS11IdentityLoader.TokenInfo) -> Bool {
        matchesToken(label: info.label, manufacturer: info.manufacturer, model: info.model, serial: info.serial)
    }
}

private extension String {
    func trimmingTrailing(while predicate: (Character) -> Bool) -> String {
        var end = endIndex
        while end > startIndex, predicate(self[index(before: end)]) { end = index(before: end) }
        return String(self[..<end])
    }
}
