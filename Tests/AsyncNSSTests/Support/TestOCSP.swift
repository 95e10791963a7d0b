import Foundation

/// A CA run with `openssl ca` for the OCSP and CRL tests, made once per test
/// run: server certificates (EC and RSA) whose Authority Information Access
/// names an OCSP responder on loopback, one of them revoked, a delegated OCSP
/// signer, DER OCSP responses made by `openssl ocsp` (good, revoked, delegated,
/// expired through `faketime`), and a CRL; client certificates too.
final class TestOCSP: Sendable {
    let directory: TemporaryDirectory
    /// The port the certificates' AIA names: `openssl ocsp -port` listens there.
    let responderPort: Int

    var caCertificate: String { directory.file("ca.pem") }
    func certificate(_ name: Leaf) -> String { directory.file("\(name.rawValue).pem") }
    func key(_ name: Leaf) -> String { directory.file("\(name.rawValue).key") }
    /// `openssl ocsp -respout` for each case.
    func response(_ kind: Response) -> String { directory.file("\(kind.rawValue).ocsp.der") }
    /// The CA's CRL (PEM), which lists `revoked`.
    var crl: String { directory.file("ca.crl.pem") }

    enum Leaf: String, Sendable, CaseIterable {
        case ec = "leaf-ec", rsa = "leaf-rsa", revoked = "leaf-revoked"
        /// Client certificates (RSA, EC): the second one revoked.
        case client = "client-ok", revokedClient = "client-revoked"
    }

    enum Response: String, Sendable {
        /// For `leaf-ec`, signed by the CA.
        case goodEC = "good-ec"
        /// For `leaf-rsa`, signed by the CA.
        case goodRSA = "good-rsa"
        /// For `leaf-revoked`: revoked.
        case revoked
        /// For `leaf-ec`, signed by a delegated responder whose certificate it carries.
        case delegatedEC = "delegated-ec"
        /// For `leaf-ec`, made two days ago, its nextUpdate a day ago.
        case expiredEC = "expired-ec"
    }

    static var isAvailable: Bool { ExternalTool.isInstalled("openssl", "faketime") }

    private init(directory: TemporaryDirectory, responderPort: Int) {
        self.directory = directory
        self.responderPort = responderPort
    }

    static func shared() async throws -> TestOCSP { try await cache.value }
    private static let cache = MadeOnce { try await TestOCSP.make() }

    /// Runs `openssl ocsp` as the responder the certificates name, until `body` ends.
    func withResponder<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        let responder = try ChildProcess("openssl", [
            "ocsp", "-index", directory.file("db/index.txt"), "-port", "\(responderPort)",
            "-rsigner", caCertificate, "-rkey", directory.file("ca.key"), "-CA", caCertificate, "-nmin", "60",
        ])
        defer { responder.stop() }
        try await RawTCP.waitUntilListeningWithoutConnecting(port: responderPort)
        return try await body()
    }

    private static func make() async throws -> TestOCSP {
        let pki = TestOCSP(directory: try TemporaryDirectory(), responderPort: try RawTCP.freePort())
        let dir = pki.directory
        try FileManager.default.createDirectory(atPath: dir.file("db"), withIntermediateDirectories: true)
        _ = try dir.write("db/index.txt", "")
        _ = try dir.write("db/serial", "1000\n")
        _ = try dir.write("db/index.txt.attr", "unique_subject = no\n")
        _ = try dir.write("ca.cnf", """
            [ ca ]
            default_ca = test
            [ test ]
            dir = \(dir.path)
            database = $dir/db/index.txt
            serial = $dir/db/serial
            new_certs_dir = $dir/db
            certificate = $dir/ca.pem
            private_key = $dir/ca.key
            default_md = sha256
            default_days = 30
            default_crl_days = 7
            policy = anything
            copy_extensions = none
            [ anything ]
            commonName = supplied
            [ ca_ext ]
            basicConstraints = critical,CA:true
            keyUsage = critical,keyCertSign,cRLSign
            subjectKeyIdentifier = hash
            [ signer_ext ]
            basicConstraints = critical,CA:false
            keyUsage = critical,digitalSignature
            extendedKeyUsage = OCSPSigning
            authorityKeyIdentifier = keyid
            [ leaf_ext ]
            basicConstraints = critical,CA:false
            keyUsage = critical,digitalSignature,keyEncipherment
            extendedKeyUsage = serverAuth
            subjectAltName = DNS:localhost,IP:127.0.0.1
            authorityInfoAccess = OCSP;URI:http://127.0.0.1:\(pki.responderPort)/
            authorityKeyIdentifier = keyid
            [ client_ext ]
            basicConstraints = critical,CA:false
            keyUsage = critical,digitalSignature
            extendedKeyUsage = clientAuth
            authorityKeyIdentifier = keyid

            """)
        let config = dir.file("ca.cnf")
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        try await run("openssl", ["req", "-x509"] + ec + ["-nodes", "-keyout", dir.file("ca.key"), "-out", pki.caCertificate,
                                   "-subj", "/CN=AsyncNSS OCSP Test CA", "-days", "30", "-config", config, "-extensions", "ca_ext"])
        func issue(_ name: String, _ keyArguments: [String], _ extensions: String) async throws {
            try await run("openssl", ["req", "-new"] + keyArguments + ["-nodes", "-keyout", dir.file("\(name).key"), "-out", dir.file("\(name).csr"), "-subj", "/CN=\(name)"])
            try await run("openssl", ["ca", "-batch", "-config", config, "-extensions", extensions, "-in", dir.file("\(name).csr"), "-out", dir.file("\(name).pem"), "-notext"])
        }
        try await issue("ocsp-signer", ec, "signer_ext")
        try await issue(Leaf.ec.rawValue, ec, "leaf_ext")
        try await issue(Leaf.rsa.rawValue, ["-newkey", "rsa:2048"], "leaf_ext")
        try await issue(Leaf.revoked.rawValue, ec, "leaf_ext")
        try await issue(Leaf.client.rawValue, ["-newkey", "rsa:2048"], "client_ext")
        try await issue(Leaf.revokedClient.rawValue, ec, "client_ext")
        for revoked in [Leaf.revoked, .revokedClient] {
            try await run("openssl", ["ca", "-batch", "-config", config, "-revoke", pki.certificate(revoked), "-crl_reason", "keyCompromise"])
        }
        try await run("openssl", ["ca", "-batch", "-config", config, "-gencrl", "-out", pki.crl])

        func respond(_ leaf: Leaf, _ kind: Response, signer: String = "ca", faked: String? = nil) async throws {
            var arguments = ["ocsp", "-index", dir.file("db/index.txt"), "-CA", pki.caCertificate, "-issuer", pki.caCertificate,
                             "-rsigner", dir.file("\(signer).pem"), "-rkey", dir.file("\(signer).key"),
                             "-cert", pki.certificate(leaf), "-no_nonce", "-ndays", "1", "-respout", pki.response(kind)]
            if signer == "ca" { arguments.append("-resp_no_certs") }
            if let faked {
                try await run("faketime", ["-f", faked, ExternalTool.path("openssl") ?? "openssl"] + arguments)
            } else {
                try await run("openssl", arguments)
            }
        }
        try await respond(.ec, .goodEC)
        try await respond(.rsa, .goodRSA)
        try await respond(.revoked, .revoked)
        try await respond(.ec, .delegatedEC, signer: "ocsp-signer")
        try await respond(.ec, .expiredEC, faked: "-2d")
        return pki
    }

    private static func run(_ tool: String, _ arguments: [String]) async throws {
        let output = try await ExternalTool.run(tool, arguments)
        guard output.status == 0 else {
            throw TestPKI.PKIFailure(command: ([tool] + arguments).joined(separator: " "), output: output)
        }
    }
}
