import AsyncNSS
import Foundation
import Testing

extension Integration {
    @Suite("nss-tls Encrypted Client Hello", .enabled(if: ExternalTool.isInstalled("openssl"), "needs openssl: apt-get install openssl"))
    struct EncryptedClientHelloToolTests {
        @Test("serve --ech-public-name makes keys (mode 0600) and logs the list; connect --ech hides the name and both report it")
        func serveAndConnect() async throws {
            try await withTimeout(seconds: 90) {
                let directory = try TemporaryDirectory()
                let certificate = directory.file("server.pem"), key = directory.file("server.key"), keys = directory.file("ech.pem")
                try await SelfSignedFiles.make(certificate: certificate, key: key, subject: "/CN=public.example", altName: "DNS:public.example,DNS:secret.example")
                let server = try await ServeProcess.start(["--cert", certificate, "--key", key, "--ech-keys", keys, "--ech-public-name", "public.example"])
                guard let line = await server.process.stderr.waitForLine(seconds: 20, where: { $0.contains("ECHConfigList") }),
                      let list = line.split(separator: " ").last.map(String.init) else {
                    Issue.record("no ECHConfigList logged: \(server.process.transcript)")
                    return
                }
                let attributes = try FileManager.default.attributesOfItem(atPath: keys)
                #expect((attributes[.posixPermissions] as? Int) == 0o600)
                let output = try await ToolRun.run(["connect", "127.0.0.1:\(server.port)", "--ca", certificate, "--server-name", "secret.example", "--ech", list],
                                                   input: "GET / HTTP/1.0\r\n\r\n")
                #expect(output.status == 0, "\(output)")
                #expect(output.stderr.contains("nss-tls: ech: accepted"), "\(output)")
                #expect(output.stdout.contains("sni: secret.example"), "\(output)")
                #expect(output.stdout.contains("ech: accepted"), "\(output)")
                _ = await server.process.stop()

                // The same file serves again: the list a DNS record holds stays valid.
                let again = try await ServeProcess.start(["--cert", certificate, "--key", key, "--ech-keys", keys])
                #expect(await again.process.stderr.waitForLine(seconds: 20, where: { $0.hasSuffix(list) }) != nil, "\(again.process.transcript)")
                _ = await again.process.stop()
            }
        }
    }
}
