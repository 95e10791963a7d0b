internal import CNSS

/// The TLS 1.2 cipher suites a connection offers or accepts. TLS 1.3's
/// three suites (AES-GCM and ChaCha20-Poly1305, all with forward secrecy)
/// are always on.
///
/// The default, ``mozillaIntermediate``, is the TLS 1.2 part of Mozilla's
/// "intermediate" profile, which Go and rustls also follow: ECDHE or DHE key
/// exchange (forward secrecy) with an AEAD cipher. Peers that can do nothing
/// better need ``named(_:)`` or ``nssDefaults``.
///
/// RC4, DES, 3DES, NULL and export suites are never enabled, whatever is asked.
public struct TLSCipherSuites: Sendable, Hashable, CustomStringConvertible {
    enum Selection: Sendable, Hashable {
        case mozillaIntermediate
        case nssDefaults
        /// IANA suite numbers.
        case suites([UInt16])
    }

    let selection: Selection

    /// ECDHE-ECDSA, ECDHE-RSA and DHE-RSA with AES-GCM or ChaCha20-Poly1305.
    public static let mozillaIntermediate = TLSCipherSuites(selection: .mozillaIntermediate)

    /// NSS's own defaults (static RSA key exchange and CBC included), less
    /// the weak families. For peers that support nothing better.
    public static let nssDefaults = TLSCipherSuites(selection: .nssDefaults)

    /// The TLS 1.2 suites of Mozilla's intermediate profile, by IANA number.
    static let intermediateSuites: [UInt16] = [
        0xC02B, 0xC02F, 0xC02C, 0xC030, // ECDHE-ECDSA/RSA with AES-128/256-GCM
        0xCCA9, 0xCCA8,                 // ECDHE-ECDSA/RSA with ChaCha20-Poly1305
        0x009E, 0x009F, 0xCCAA,         // DHE-RSA with AES-128/256-GCM, ChaCha20-Poly1305
    ]

    /// Exactly these TLS 1.2 suites, by their IANA names
    /// (`TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA`, as NSS spells them too).
    ///
    /// - Throws: ``TLSError/Kind/invalidConfiguration`` for a name NSS does
    ///   not implement, for a weak suite, or for an empty list.
    public static func named(_ names: [String]) throws -> TLSCipherSuites {
        let operation = "choosing cipher suites"
        guard !names.isEmpty else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "the list of cipher suites is empty")
        }
        let implemented = CipherSuiteTable.implemented
        let suites = try names.map { name -> UInt16 in
            let wanted = String(name.filter { !$0.isWhitespace }).uppercased()
            guard let suite = implemented.first(where: { $0.name == wanted }) else {
                throw TLSError(kind: .invalidConfiguration, operation: operation, message: "NSS does not implement the cipher suite \"\(name)\"; use IANA names such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
            }
            guard !suite.isWeak else {
                throw TLSError(kind: .invalidConfiguration, operation: operation, message: "\(suite.name) is weak (RC4, DES, 3DES, NULL or export) and is never enabled")
            }
            return suite.number
        }
        return TLSCipherSuites(selection: .suites(suites))
    }

    /// Reads a command-line spelling: `nss-defaults`, `mozilla-intermediate`,
    /// or comma-separated IANA names.
    public static func parse(_ text: String) throws -> TLSCipherSuites {
        switch text.lowercased() {
        case "nss-defaults": return .nssDefaults
        case "mozilla-intermediate", "intermediate": return .mozillaIntermediate
        default: return try named(text.split(separator: ",").map(String.init))
        }
    }

    /// The spelling ``parse(_:)`` reads back: `mozilla-intermediate`,
    /// `nss-defaults`, or the IANA names separated by commas.
    public var description: String {
        switch selection {
        case .mozillaIntermediate: "mozilla-intermediate"
        case .nssDefaults: "nss-defaults"
        case .suites(let suites):
            suites.map { suite in CipherSuiteTable.name(of: suite) ?? String(suite, radix: 16) }.joined(separator: ",")
        }
    }

    /// Whether `suite` is enabled by this selection, given NSS's default for it.
    func enables(_ suite: CipherSuiteTable.Suite, nssDefault: Bool) -> Bool {
        if suite.isWeak { return false }
        if suite.isTLS13 { return true }
        switch selection {
        case .mozillaIntermediate: return Self.intermediateSuites.contains(suite.number)
        case .nssDefaults: return nssDefault
        case .suites(let suites): return suites.contains(suite.number)
        }
    }
}

/// The cipher suites NSS implements, as its `SSLCipherSuiteInfo` describes them.
enum CipherSuiteTable {
    struct Suite: Sendable {
        let number: UInt16
        let name: String
        /// RC4, DES, 3DES, RC2, IDEA, NULL, or under 128 bits.
        let isWeak: Bool
        let isTLS13: Bool
    }

    /// NSS's table is fixed for the life of the process, so it is described
    /// once, not on every socket that ``SSLSocketSetup`` configures.
    static let implemented: [Suite] = {
        guard let suites = SSL_GetImplementedCiphers() else { return [] }
        return (0..<Int(SSL_GetNumImplementedCiphers())).compactMap { describe(suites[$0]) }
    }()

    static func name(of number: UInt16) -> String? {
        implemented.first { $0.number == number }?.name
    }

    private static let weakCiphers: Set<UInt32> = [ssl_calg_null.rawValue, ssl_calg_rc4.rawValue, ssl_calg_rc2.rawValue, ssl_calg_des.rawValue, ssl_calg_3des.rawValue, ssl_calg_idea.rawValue]

    private static func describe(_ number: UInt16) -> Suite? {
        var info = SSLCipherSuiteInfo()
        guard SSL_GetCipherSuiteInfo(number, &info, PRUintn(MemoryLayout<SSLCipherSuiteInfo>.size)) == SECSuccess,
              let name = info.cipherSuiteName else { return nil }
        return Suite(
            number: number,
            name: String(cString: name),
            isWeak: weakCiphers.contains(info.symCipher.rawValue) || info.effectiveKeyBits < 128,
            isTLS13: info.keaType == ssl_kea_tls13_any
        )
    }
}
