internal import CNSS

/// What a PKCS#11 URI (RFC 7512) names: a private key on a token, and where
/// its PIN and module come from. For example
/// `pkcs11:token=web;object=server-key;type=private?pin-source=/run/pin`.
///
/// NSS's `PK11URI_ParseURI` does the parsing and percent-decoding; this type
/// keeps what AsyncNSS matches on, so that matching is plain Swift.
struct PKCS11KeyURI: Equatable, Sendable {
    /// Path attributes that select the token.
    var token: String?
    var manufacturer: String?
    var model: String?
    var serial: String?
    /// The key's label (`CKA_LABEL`).
    var object: String?
    /// The key's identifier (`CKA_ID`), as bytes.
    var id: [UInt8]?
    /// `pin-value`: the PIN itself, in the URI.
    var pinValue: String?
    /// `pin-source`: a file holding the PIN (`file:` URI or a path).
    var pinSource: String?
    /// `module-path`: the PKCS#11 module to load.
    var modulePath: String?

    /// RFC 7512 attributes AsyncNSS does not match on. Ignoring one would
    /// select more than the URI says, so a URI with one is refused.
    private static let unsupported = [
        "library-manufacturer", "library-description", "library-version",
        "slot-manufacturer", "slot-description", "slot-id",
    ]

    /// Parses `text`; the URI must name a key by `object`, `id` or both, and
    /// its `type`, when present, must be `private`.
    static func parse(_ text: String) throws -> PKCS11KeyURI {
        func invalid(_ message: String) -> TLSError {
            TLSError(kind: .invalidIdentity, operation: "reading the PKCS#11 URI \(text)", message: message)
        }
        // PK11URI_ParseURI allocates from NSPR arenas, whose locks exist only
        // once NSPR is initialised.
        _ = try Runtime.shared.services()
        guard text.hasPrefix("pkcs11:"), let uri = PK11URI_ParseURI(text) else {
            throw invalid("not a PKCS#11 URI (RFC 7512); expected pkcs11:token=NAME;object=LABEL")
        }
        defer { PK11URI_DestroyURI(uri) }
        func path(_ name: String) -> String? {
            PK11URI_GetPathAttribute(uri, name).map { String(cString: $0) }
        }
        func query(_ name: String) -> String? {
            PK11URI_GetQueryAttribute(uri, name).map { String(cString: $0) }
        }
        if let name = unsupported.first(where: { path($0) != nil }) {
            throw invalid("the attribute \(name) is not supported; select the token with token, manufacturer, model or serial")
        }
        if let type = path("type"), type != "private" {
            throw invalid("type=\(type) does not name a private key; use type=private or leave type out")
        }
        var result = PKCS11KeyURI()
        result.token = path("token")
        result.manufacturer = path("manufacturer")
        result.model = path("model")
        result.serial = path("serial")
        result.object = path("object")
        if let item = PK11URI_GetPathAttributeItem(uri, "id") {
            result.id = item.pointee.bytes
        }
        result.pinValue = query("pin-value")
        result.pinSource = query("pin-source")
        result.modulePath = query("module-path")
        guard result.object != nil || result.id != nil else {
            throw invalid("the URI names no key; add object=LABEL or id=%XX (the key's CKA_LABEL or CKA_ID)")
        }
        return result
    }

    /// Whether a token with these `CK_TOKEN_INFO` fields (trailing blanks
    /// removed) is one the URI selects.
    func matchesToken(label: String, manufacturer: String, model: String, serial: String) -> Bool {
        (token.map { $0 == label } ?? true)
            && (self.manufacturer.map { $0 == manufacturer } ?? true)
            && (self.model.map { $0 == model } ?? true)
            && (self.serial.map { $0 == serial } ?? true)
    }

    /// Whether a key with this label and identifier is the one the URI names.
    func matchesKey(label: String?, id: [UInt8]?) -> Bool {
        (object.map { $0 == label } ?? true) && (self.id.map { $0 == id } ?? true)
    }

    /// The URI without its PIN, for messages and logs.
    var redactedDescription: String {
        var parts: [String] = []
        if let token { parts.append("token=\(token)") }
        if let manufacturer { parts.append("manufacturer=\(manufacturer)") }
        if let model { parts.append("model=\(model)") }
        if let serial { parts.append("serial=\(serial)") }
        if let object { parts.append("object=\(object)") }
        if let id { parts.append("id=" + id.map { byte in "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2) }.joined()) }
        return "pkcs11:" + parts.joined(separator: ";")
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
