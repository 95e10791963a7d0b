import AsyncNSS
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    /// A fleet as an operator would run it: HAProxy in TCP mode with
    /// `send-proxy-v2`, health checks, retries and redispatch, in front of two
    /// `nss-tls serve --workers 2 --proxy-protocol` instances.
    /// RELIABILITY.md records what it measured.
    @Suite("A fleet behind HAProxy", .enabled(if: ExternalTool.isInstalled("haproxy", "strsclnt", "certutil", "curl"), "needs haproxy, libnss3-tools and curl"))
    struct FleetTests {
        static func instanceArguments(_ pki: TestPKI) -> [String] {
            ["--workers", "2", "--proxy-protocol", "--cert", pki.serverCertificate, "--key", pki.serverKey,
             "--drain-delay", "1", "--grace-period", "5"]
        }

        static func startInstance(_ pki: TestPKI, port: Int = 0) async throws -> ServeProcess {
            let instance = try await ServeProcess.start(instanceArguments(pki), port: port)
            let serving = await instance.process.stderr.waitForLines(count: 2, matching: { $0.contains("worker serving on") })
            guard serving.count == 2 else { throw ServeProcess.NotStarted(transcript: instance.process.transcript) }
            return instance
        }

        /// Frontends: `one` (instance A alone: its two workers share the
        /// port), `sticky` (balance source over A and B) and `rolling` (round
        /// robin over A and B, the one a rolling restart goes through).
        static func haproxy(a: Int, b: Int) async throws -> HAProxy {
            try await HAProxy.start(frontends: 3) { ports in
                """
                defaults
                    mode tcp
                    timeout connect 2s
                    timeout client 30s
                    timeout server 30s
                    timeout check 1s
                    retries 3
                    option redispatch
                    default-server send-proxy-v2 check check-ssl verify none check-send-proxy inter 100ms fall 1 rise 1
                frontend one
                    bind 127.0.0.1:\(ports[0])
                    default_backend one
                frontend sticky
                    bind 127.0.0.1:\(ports[1])
                    default_backend sticky
                frontend rolling
                    bind 127.0.0.1:\(ports[2])
                    default_backend rolling
                backend one
                    option httpchk GET /health
                    http-check expect status 200
                    server a 127.0.0.1:\(a)
                backend sticky
                    balance source
                    option httpchk GET /health
                    http-check expect status 200
                    server a 127.0.0.1:\(a)
                    server b 127.0.0.1:\(b)
                backend rolling
                    balance roundrobin
                    option httpchk GET /health
                    http-check expect status 200
                    server a 127.0.0.1:\(a)
                    server b 127.0.0.1:\(b)

                """
            }
        }

        @Test("the page names the client; resumption works across the workers of one instance and with balance source across two; a rolling restart of both instances loses none of 2,000 connections of 2 requests")
        func fleet() async throws {
            try await withTimeout(seconds: 240) {
                let pki = try await TestPKI.shared()
                let a = try await Self.startInstance(pki)
                let b = try await Self.startInstance(pki)
                let proxy = try await Self.haproxy(a: a.port, b: b.port)
                var instances = [a, b]
                defer { for instance in instances { instance.process.signal(SIGKILL) } }
                // The checks bring the servers up (rise 1, every 100 ms).
                try await Task.sleep(for: .milliseconds(500))

                // a. The page names the client's own port, not HAProxy's.
                let curl = try await ExternalTool.run("curl", ["-s", "--cacert", pki.caCertificate, "--max-time", "20", "--local-port", "24000-24999",
                                                               "--resolve", "localhost:\(proxy.ports[2]):127.0.0.1", "https://localhost:\(proxy.ports[2])/"])
                #expect(curl.status == 0, "\(curl)\n\(a.process.transcript)")
                #expect(curl.stdout.range(of: #"^peer: 127\.0\.0\.1:24\d\d\d\n"#, options: .regularExpression) != nil, "\(curl)")

                // b and c. Resumption, 200 connections each.
                let connections = 200
                var resumed: [String: Int] = [:]
                for (name, port) in [("one", proxy.ports[0]), ("sticky", proxy.ports[1])] {
                    // TLS 1.2 by session ID and by ticket, TLS 1.3 by ticket.
                    for (version, tickets) in [("tls1.2", false), ("tls1.2", true), ("tls1.3", true)] {
                        let (hits, output) = try await Strsclnt.resumed(port: port, version: version, connections: connections, tickets: tickets)
                        let key = "\(name) \(version)\(tickets ? " tickets" : " session IDs")"
                        resumed[key] = hits
                        #expect(hits * 100 >= (connections - 1) * 99, "\(key): \(hits) of \(connections - 1) resumed: \(output)")
                    }
                }

                // d. Connections of two requests each, 8 at a time, while
                // first A and then B are stopped and started again; at least
                // 2,000, and until each restarted instance has served some.
                let total = 2_000
                let progress = Progress()
                var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
                client.serverName = "localhost"
                let configuration = client
                let rolling = proxy.ports[2]
                let requests = Task {
                    await withTaskGroup(of: Void.self) { group in
                        for _ in 0..<8 {
                            group.addTask {
                                while !progress.stopping.load(ordering: .relaxed) {
                                    do {
                                        let connection = try await TLSConnection.connect(host: "127.0.0.1", port: rolling, configuration: configuration)
                                        // Two requests, so that the log line ("http, 2 requests")
                                        // tells them from HAProxy's health checks.
                                        try await connection.write(Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8))
                                        let (text, _) = try await TestServers.readToEnd(connection)
                                        await connection.close()
                                        if text.components(separatedBy: "HTTP/1.1 200 OK").count != 3 { progress.fail("answer: \(text.prefix(80))") }
                                    } catch {
                                        progress.fail("\(error)")
                                    }
                                    progress.completed.add(1, ordering: .relaxed)
                                }
                            }
                        }
                    }
                }
                func served(_ instance: ServeProcess) -> Int {
                    instance.process.stderr.lines.filter { ServeProcess.isConnectionLine($0) && $0.contains("(http, 2 requests)") }.count
                }
                var restarted: [ServeProcess] = []
                for index in [0, 1] {
                    // Each instance serves a while before it is stopped.
                    while served(instances[index]) < 100 { try await Task.sleep(for: .milliseconds(20)) }
                    let old = instances[index]
                    let status = await old.process.stop(seconds: 30)
                    #expect(status == 0, "\(old.process.transcript)")
                    let fresh = try await Self.startInstance(pki, port: old.port)
                    instances[index] = fresh
                    restarted.append(fresh)
                    // Health checks every 100 ms bring it back into rotation.
                    while served(fresh) < 100 { try await Task.sleep(for: .milliseconds(20)) }
                }
                while progress.completed.load(ordering: .relaxed) < total { try await Task.sleep(for: .milliseconds(20)) }
                progress.stopping.store(true, ordering: .relaxed)
                await requests.value
                let completed = progress.completed.load(ordering: .relaxed)
                let failed = progress.failures.withLock { $0 }
                #expect(completed >= total)
                #expect(failed.isEmpty, "\(failed.count) of \(completed) connections failed: \(failed.prefix(5))")
                let servedByRestarted = restarted.map(served)
                print("fleet: resumed of \(connections - 1): \(resumed.sorted { $0.key < $1.key }); rolling restart: \(failed.count) of \(completed) connections (2 requests each) failed; connections served by the restarted instances: \(servedByRestarted)")
                for instance in instances { _ = await instance.process.stop() }
                instances = []
                _ = proxy.stop()
            }
        }
    }
}

/// The rolling-restart client's counters.
private final class Progress: Sendable {
    /// Connections done, failed or not.
    let completed = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let failures = Mutex<[String]>([])

    func fail(_ reason: String) { failures.withLock { $0.append(reason) } }
}
