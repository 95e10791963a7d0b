import AsyncNSS
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

extension Integration {
    /// `nss-tls serve --proxy-protocol`, and the `peer:` line of its page.
    @Suite("nss-tls serve behind a proxy", .enabled(if: ExternalTool.isInstalled("curl"), "needs curl: apt-get install curl"))
    struct ServeProxyProtocolTests {
        @Test("without --proxy-protocol the page names curl's own address and port")
        func pageNamesPeer() async throws {
            try await withTimeout(seconds: 60) {
                let server = try await ServeProcess.start()
                let curl = try await ExternalTool.run("curl", ["-sk", "--max-time", "20", "--local-port", "22000-22999", "https://127.0.0.1:\(server.port)/"])
                _ = await server.process.stop()
                #expect(curl.status == 0, "\(curl)")
                let peer = try #require(curl.stdout.split(separator: "\n").first { $0.hasPrefix("peer: 127.0.0.1:") }, "\(curl)")
                #expect((22000...22999).contains(Int(peer.split(separator: ":").last ?? "") ?? 0), "\(peer)")
            }
        }

        @Test("--proxy-protocol: curl's v1 header and HAProxy's v2 header name the client; a client without a header is refused and logged, and serve goes on")
        func proxyProtocol() async throws {
            try await withTimeout(seconds: 60) {
                let server = try await ServeProcess.start(["--proxy-protocol"])
                let v1 = try await ExternalTool.run("curl", ["-sk", "--max-time", "20", "--haproxy-protocol", "--local-port", "23000-23499", "https://127.0.0.1:\(server.port)/"])
                #expect(v1.status == 0, "\(v1)")
                #expect(v1.stdout.range(of: #"peer: 127\.0\.0\.1:23[0-4]\d\d\n"#, options: .regularExpression) != nil, "\(v1)")

                let direct = try await ExternalTool.run("curl", ["-sk", "--max-time", "20", "https://127.0.0.1:\(server.port)/"])
                #expect(direct.status != 0, "a client without a PROXY header was served: \(direct)")
                let again = try await ExternalTool.run("curl", ["-sk", "--max-time", "20", "--haproxy-protocol", "https://127.0.0.1:\(server.port)/"])
                #expect(again.status == 0 && again.stdout.contains("peer: 127.0.0.1:"), "serve did not go on after the refusal: \(again)")

                if ExternalTool.isInstalled("haproxy") {
                    let haproxy = try await HAProxy.start(backends: [server.port])
                    let v2 = try await ExternalTool.run("curl", ["-sk", "--max-time", "20", "--local-port", "23500-23999", "https://127.0.0.1:\(haproxy.port)/"])
                    let output = haproxy.stop()
                    #expect(v2.status == 0, "\(v2)\n\(output)")
                    #expect(v2.stdout.range(of: #"peer: 127\.0\.0\.1:23[5-9]\d\d\n"#, options: .regularExpression) != nil, "\(v2)")
                }
                let status = await server.process.stop()
                #expect(status == 0, "\(server.process.transcript)")
                #expect(server.process.stderr.text.contains("PROXY protocol header refused"), "\(server.process.transcript)")
            }
        }

        @Test("--drain-delay: after SIGTERM, GET /health answers 503 while pages are still served, then serve stops")
        func drainDelay() async throws {
            try await withTimeout(seconds: 60) {
                let server = try await ServeProcess.start(["--drain-delay", "3"])
                let url = "https://127.0.0.1:\(server.port)"
                let healthy = try await ExternalTool.run("curl", ["-sk", "--max-time", "20", "-w", "%{http_code}", "\(url)/health"])
                #expect(healthy.stdout == "ok\n200", "\(healthy)")
                server.process.signal(SIGTERM)
                _ = await server.process.stderr.waitForLine(where: { $0.contains("draining:") })
                let draining = try await ExternalTool.run("curl", ["-sk", "--max-time", "20", "-w", "%{http_code}", "\(url)/health"])
                #expect(draining.stdout == "draining\n503", "\(draining)")
                let page = try await ExternalTool.run("curl", ["-sk", "--max-time", "20", "\(url)/"])
                #expect(page.status == 0 && page.stdout.hasPrefix("peer: "), "still serving while draining: \(page)")
                let status = await server.process.exitStatus(within: 20)
                #expect(status == 0, "\(server.process.transcript)")
            }
        }
    }
}
