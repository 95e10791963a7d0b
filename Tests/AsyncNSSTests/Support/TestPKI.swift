import Foundation

/// A small PKI made with the openssl command line for each test run: a CA, a
/// server certificate (EC and RSA) and client certificates (EC and RSA) signed
/// by it, an intermediate CA with a leaf of its own, the same material in an NSS database with a password, and keys in the formats
/// AsyncNSS refuses (SEC1, PKCS#1). Nothing here is committed.
final class TestPKI: Sendable {
    let directory: TemporaryDirectory
    var caCertificate: String { directory.file("ca.pem") }
    var serverCertificate: String { directory.file("server.pem") }
    var serverKey: String { directory.file("server.key") }
    var rsaServerCertificate: String { directory.file("rsa-server.pem") }
    var rsaServerKey: String { directory.file("rsa-server.key") }
    var clientCertificate: String { directory.file("client.pem") }
    var clientKey: String { directory.file("client.key") }
    var rsaClientCertificate: String { directory.file("rsa-client.pem") }
    var rsaClientKey: String { directory.file("rsa-client.key") }
    /// The intermediate CA, signed by the CA.
    var intermediateCertificate: String { directory.file("intermediate.pem") }
    /// A server leaf (EC, for localhost) signed by the intermediate, alone.
    var chainedLeafCertificate: String { directory.file("chained-leaf.pem") }
    var chainedLeafKey: String { directory.file("chained-leaf.key") }
    /// The leaf, then the intermediate: what a server presents.
    var chainedLeafChain: String { directory.file("chained-leaf-chain.pem") }
    var sec1Key: String { directory.file("server-sec1.key") }
    var pkcs1Key: String { directory.file("rsa-pkcs1.key") }
    /// `sql:` database holding the server identities as `server` (EC) and
    /// `rsa-server`, the CA as trusted `ca`.
    var database: String { "sql:" + directory.file("nssdb") }
    static let databasePassword = "db-password"
    var databasePasswordFile: String { directory.file("db-password.txt") }

    private init(directory: TemporaryDirectory) { self.directory = directory }

    /// The PKI of this test run, made once.
    static func shared() async throws -> TestPKI { try await cache.value }

    private static let cache = MadeOnce { try await TestPKI.make() }

    private static func make() async throws -> TestPKI {
        let pki = TestPKI(directory: try TemporaryDirectory())
        let dir = pki.directory
        _ = try dir.write("server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n")
        _ = try dir.write("ca.ext", "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n")
        _ = try dir.write("client.ext", "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n")
        _ = try dir.write("db-password.txt", databasePassword + "\n")
        _ = try dir.write("p12-password.txt", "p12-password\n")
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try await openssl(["req", "-x509"] + ec + ["-keyout", dir.file("ca.key"), "-out", dir.file("ca.pem"), "-subj", "/CN=AsyncNSS Test CA", "-days", "30",
                           "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        try await issue(pki, name: "server", subject: "/CN=localhost", keyArguments: ec, extensions: "server.ext")
        try await issue(pki, name: "rsa-server", subject: "/CN=localhost", keyArguments: ["-newkey", "rsa:2048", "-nodes"], extensions: "server.ext")
        try await issue(pki, name: "client", subject: "/CN=AsyncNSS Test Client/O=AsyncNSS", keyArguments: ec, extensions: "client.ext")
        try await issue(pki, name: "rsa-client", subject: "/CN=AsyncNSS Test RSA Client/O=AsyncNSS", keyArguments: ["-newkey", "rsa:2048", "-nodes"], extensions: "client.ext")
        try await issue(pki, name: "intermediate", subject: "/CN=AsyncNSS Test Intermediate", keyArguments: ec, extensions: "ca.ext")
        try await issue(pki, name: "chained-leaf", subject: "/CN=localhost/OU=Chained", keyArguments: ec, extensions: "server.ext", issuer: "intermediate")
        let leafAndIntermediate = try String(contentsOfFile: pki.chainedLeafCertificate, encoding: .utf8) + String(contentsOfFile: pki.intermediateCertificate, encoding: .utf8)
        _ = try dir.write("chained-leaf-chain.pem", leafAndIntermediate)
        try await openssl(["pkey", "-in", pki.serverKey, "-traditional", "-out", pki.sec1Key])
        try await openssl(["genrsa", "-traditional", "-out", pki.pkcs1Key, "2048"])

        if ExternalTool.isInstalled("certutil", "pk12util") {
            let db = dir.file("nssdb")
            try FileManager.default.createDirectory(atPath: db, withIntermediateDirectories: true)
            try await openssl(["pkcs12", "-export", "-inkey", pki.serverKey, "-in", pki.serverCertificate, "-certfile", pki.caCertificate,
                               "-name", "server", "-out", dir.file("server.p12"), "-passout", "pass:p12-password"])
            try await tool("certutil", ["-N", "-d", pki.database, "-f", pki.databasePasswordFile])
            try await tool("pk12util", ["-i", dir.file("server.p12"), "-d", pki.database, "-w", dir.file("p12-password.txt"), "-k", pki.databasePasswordFile])
            // An RSA server identity too, as `rsa-server`. Its subject differs
            // from the EC one's: NSS gives a certificate whose subject is
            // already in the database that certificate's nickname.
            try await issue(pki, name: "rsa-db-server", subject: "/CN=localhost/OU=RSA", keyArguments: ["-newkey", "rsa:2048", "-nodes"], extensions: "server.ext")
            try await openssl(["pkcs12", "-export", "-inkey", dir.file("rsa-db-server.key"), "-in", dir.file("rsa-db-server.pem"), "-certfile", pki.caCertificate,
                               "-name", "rsa-server", "-out", dir.file("rsa-server.p12"), "-passout", "pass:p12-password"])
            try await tool("pk12util", ["-i", dir.file("rsa-server.p12"), "-d", pki.database, "-w", dir.file("p12-password.txt"), "-k", pki.databasePasswordFile])
            try await tool("certutil", ["-M", "-n", "AsyncNSS Test CA", "-t", "CT,C,C", "-d", pki.database, "-f", pki.databasePasswordFile])
        }
        return pki
    }

    private static func issue(_ pki: TestPKI, name: String, subject: String, keyArguments: [String], extensions: String, issuer: String = "ca") async throws {
        let dir = pki.directory
        try await openssl(["req"] + keyArguments + ["-keyout", dir.file("\(name).key"), "-out", dir.file("\(name).csr"), "-subj", subject])
        try await openssl(["x509", "-req", "-in", dir.file("\(name).csr"), "-CA", dir.file("\(issuer).pem"), "-CAkey", dir.file("\(issuer).key"), "-CAcreateserial",
                           "-out", dir.file("\(name).pem"), "-days", "30", "-extfile", dir.file(extensions)])
    }

    private static func openssl(_ arguments: [String]) async throws {
        try await tool("openssl", arguments)
    }

    private static func tool(_ name: String, _ arguments: [String]) async throws {
        let output = try await ExternalTool.run(name, arguments)
        guard output.status == 0 else {
            throw PKIFailure(command: ([name] + arguments).joined(separator: " "), output: output)
        }
    }

    struct PKIFailure: Error, CustomStringConvertible {
        let command: String
        let output: ExternalTool.Output
        var description: String { "\(command) failed: \(output)" }
    }
}
