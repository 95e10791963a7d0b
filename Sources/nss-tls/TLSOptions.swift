import ArgumentParser
import AsyncNSS

/// The protocol options `serve` and `connect` share: version range, cipher
/// suites, ALPN and handshake timeout.
struct TLSOptions: ParsableArguments {
    @Option(name: .customLong("tls-min"), help: "The lowest TLS version to accept: 1.2 or 1.3.")
    var minimumVersion = TLSVersionArgument(.tls12)

    @Option(name: .customLong("tls-max"), help: "The highest TLS version to accept: 1.2 or 1.3.")
    var maximumVersion = TLSVersionArgument(.tls13)

    @Option(
        name: .customLong("alpn"),
        help: ArgumentHelp("ALPN protocol names to offer, most preferred first, comma-separated.", valueName: "list")
    )
    var applicationProtocols: String?

    @Option(
        name: .customLong("cipher-suites"),
        help: ArgumentHelp(
            "The TLS 1.2 cipher suites: comma-separated IANA names (TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA), or nss-defaults for NSS's own list with static RSA and CBC. Default: ECDHE or DHE with AES-GCM or ChaCha20-Poly1305 (Mozilla's intermediate profile). TLS 1.3 suites are always on.",
            valueName: "list"
        )
    )
    var cipherSuites: String?

    @Option(name: .customLong("handshake-timeout"), help: ArgumentHelp("Seconds the TLS handshake may take.", valueName: "seconds"))
    var handshakeTimeout = 10.0

    @Option(name: .customLong("keylog"), help: ArgumentHelp("Append the TLS 1.3 secrets of every connection to FILE (SSLKEYLOGFILE format), so that Wireshark can decrypt a capture. For debugging only: whoever reads FILE can decrypt those connections.", valueName: "file"))
    var keyLogFile: String?

    /// The `--alpn` list split at commas; empty without the option.
    var protocolList: [String] {
        guard let applicationProtocols else { return [] }
        return applicationProtocols.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    }

    func validate() throws {
        guard minimumVersion.version <= maximumVersion.version else {
            throw ValidationError("--tls-min \(minimumVersion) is above --tls-max \(maximumVersion).")
        }
        guard handshakeTimeout.isFinite, handshakeTimeout > 0, handshakeTimeout <= 86_400 else {
            throw ValidationError("--handshake-timeout must be a number of seconds above 0 and at most 86400.")
        }
        for name in protocolList where name.utf8.isEmpty || name.utf8.count > 255 {
            throw ValidationError("--alpn names must be 1 to 255 bytes long, separated by single commas; got \"\(applicationProtocols ?? "")\".")
        }
        if let cipherSuites {
            do {
                _ = try TLSCipherSuites.parse(cipherSuites)
            } catch let error as TLSError {
                throw ValidationError("--cipher-suites: \(error.message)")
            }
        }
    }

    /// Sets the version range, cipher suites, ALPN list and handshake timeout of `configuration`.
    func apply(to configuration: inout TLSConfiguration) {
        // Checked in validate().
        if let cipherSuites, let suites = try? TLSCipherSuites.parse(cipherSuites) {
            configuration.cipherSuites = suites
        }
        configuration.minimumVersion = minimumVersion.version
        configuration.maximumVersion = maximumVersion.version
        configuration.applicationProtocols = protocolList
        configuration.handshakeTimeout = .milliseconds(max(1, Int64((handshakeTimeout * 1000).rounded())))
    }
}
