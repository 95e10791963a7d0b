import Testing

/// A self-signed ECDSA P-256 (or RSA-2048) certificate and its key, made by
/// `openssl req -x509` as PEM files: one that no database, module or identity
/// of the test process knows.
enum SelfSignedFiles {
    /// Writes the certificate to `certificate` and the PKCS#8 key to `key`,
    /// valid for 2 days, with `subject` (`/CN=…`) and, if given, one
    /// `subjectAltName` (`DNS:localhost`, `IP:127.0.0.1`).
    static func make(certificate: String, key: String, subject: String, altName: String? = nil, rsa: Bool = false) async throws {
        let keyArguments = rsa ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        var arguments = ["req", "-x509"] + keyArguments + ["-nodes", "-days", "2", "-subj", subject]
        if let altName { arguments += ["-addext", "subjectAltName=\(altName)"] }
        let output = try await ExternalTool.run("openssl", arguments + ["-keyout", key, "-out", certificate])
        #expect(output.status == 0, "\(output)")
    }
}
