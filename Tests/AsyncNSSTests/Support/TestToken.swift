import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A SoftHSM2 token made once per test run, holding the ``TestPKI`` server
/// key (label `server-key`, id 01) and its certificate (label `server-cert`,
/// id 01). The key is imported with `softhsm2-util`, which marks it sensitive:
/// the token signs with it and never hands it out.
///
/// SoftHSM2 finds its tokens through `SOFTHSM2_CONF`, set here for this
/// process and the tools it starts.
final class TestToken: Sendable {
    let directory: TemporaryDirectory
    /// The SoftHSM2 PKCS#11 library.
    let modulePath: String
    static let label = "AsyncNSS Test"
    static let pin = "1234"
    /// A second token with no objects and another PIN, which no test logs in
    /// to before it checks what a missing or wrong PIN does.
    static let spareLabel = "AsyncNSS Spare"
    static let sparePIN = "5678"
    /// A file holding the PIN, for `pin-source`.
    var pinFile: String { directory.file("pin.txt") }
    /// The URI of the server key, token and label.
    static let keyURI = "pkcs11:token=AsyncNSS%20Test;object=server-key;type=private"

    private init(directory: TemporaryDirectory, modulePath: String) {
        self.directory = directory
        self.modulePath = modulePath
    }

    static func shared() async throws -> TestToken { try await cache.value }

    private static let cache = MadeOnce { try await TestToken.make() }

    /// Where Debian, Ubuntu and Fedora put the module: the fixed paths, and
    /// Debian's multiarch folder of whatever architecture this is
    /// (`/usr/lib/aarch64-linux-gnu/softhsm/`, `/usr/lib/x86_64-linux-gnu/softhsm/`, ...).
    static let modulePaths: [String] = {
        let multiarch = ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib")) ?? [])
            .filter { $0.hasSuffix("-linux-gnu") || $0.hasSuffix("-linux-gnueabihf") || $0.hasSuffix("-linux-musl") }
            .sorted()
            .map { "/usr/lib/\($0)/softhsm/libsofthsm2.so" }
        return ["/usr/lib/softhsm/libsofthsm2.so"] + multiarch + ["/usr/lib64/pkcs11/libsofthsm2.so", "/usr/local/lib/softhsm/libsofthsm2.so"]
    }()

    /// Whether SoftHSM2 and p11tool (gnutls-bin) are installed.
    static var isAvailable: Bool {
        modulePaths.contains { FileManager.default.fileExists(atPath: $0) } && ExternalTool.isInstalled("softhsm2-util", "p11tool")
    }

    static let missingReason: Comment = "needs SoftHSM2 and p11tool: apt-get install softhsm2 gnutls-bin"

    struct SoftHSMMissing: Error, CustomStringConvertible {
        var description: String { "SoftHSM2 is not installed: apt-get install softhsm2 (CI's .ci/run installs it)" }
    }

    private static func make() async throws -> TestToken {
        guard let module = modulePaths.first(where: { FileManager.default.fileExists(atPath: $0) }),
              ExternalTool.isInstalled("softhsm2-util", "p11tool") else {
            throw SoftHSMMissing()
        }
        let pki = try await TestPKI.shared()
        let token = TestToken(directory: try TemporaryDirectory(), modulePath: module)
        let dir = token.directory
        try FileManager.default.createDirectory(atPath: dir.file("tokens"), withIntermediateDirectories: true)
        let configuration = try dir.write("softhsm2.conf", "directories.tokendir = \(dir.file("tokens"))\nobjectstore.backend = file\nlog.level = ERROR\n")
        setenv("SOFTHSM2_CONF", configuration, 1)
        _ = try dir.write("pin.txt", pin + "\n")

        try await tool("softhsm2-util", ["--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "123456"])
        try await tool("softhsm2-util", ["--init-token", "--free", "--label", spareLabel, "--pin", sparePIN, "--so-pin", "123456"])
        try await tool("softhsm2-util", ["--import", pki.serverKey, "--token", label, "--label", "server-key", "--id", "01", "--pin", pin])
        try await tool("softhsm2-util", ["--import", pki.rsaServerKey, "--token", label, "--label", "rsa-server-key", "--id", "02", "--pin", pin])
        try await tool("p11tool", ["--provider=\(module)", "--login", "--set-pin=\(pin)", "--write", "--load-certificate=\(pki.serverCertificate)",
                                   "--label=server-cert", "--id=01", "pkcs11:token=AsyncNSS%20Test"])
        return token
    }

    /// What `p11tool --list-all` shows of the token, for assertions on its objects.
    func listing() async throws -> String {
        try await Self.tool("p11tool", ["--provider=\(modulePath)", "--login", "--set-pin=\(Self.pin)", "--list-all", "pkcs11:token=AsyncNSS%20Test"])
    }

    @discardableResult
    private static func tool(_ name: String, _ arguments: [String]) async throws -> String {
        let output = try await ExternalTool.run(name, arguments)
        guard output.status == 0 else {
            throw TestPKI.PKIFailure(command: ([name] + arguments).joined(separator: " "), output: output)
        }
        return output.stdout
    }
}
