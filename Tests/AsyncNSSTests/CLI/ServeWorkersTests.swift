import AsyncNSS
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    /// `nss-tls serve --workers N`: worker processes on one port with one
    /// session cache, kept by their parent.
    @Suite("nss-tls serve --workers")
    struct ServeWorkersTests {
        /// The workers' IDs from their `worker started` lines.
        static func startedWorkers(_ server: ServeProcess) -> [String] {
            server.process.stderr.lines.filter { $0.contains("worker started") }.compactMap { line in
                line.split(separator: " ").first { $0.hasPrefix("pid=") }.map { String($0.dropFirst(4)) }
            }
        }

        /// How many connection lines each worker logged.
        static func connectionsByWorker(_ server: ServeProcess) -> [String: Int] {
            var counts: [String: Int] = [:]
            for line in server.process.stderr.lines where ServeProcess.isConnectionLine(line) {
                if let worker = line.split(separator: " ").first(where: { $0.hasPrefix("worker=") }) {
                    counts[String(worker.dropFirst(7)), default: 0] += 1
                }
            }
            return counts
        }

        static func isAlive(_ pid: String) -> Bool {
            guard let pid = pid_t(pid) else { return false }
            return kill(pid, 0) == 0
        }

        /// Session IDs live in the shared cache itself; tickets need the
        /// shared ticket keys.
        @Test("sessions resume across workers: strsclnt resumes at least 99 % by TLS 1.2 session ID, TLS 1.2 ticket and TLS 1.3 ticket, EC and RSA, and both workers serve",
              .enabled(if: ExternalTool.isInstalled("strsclnt", "certutil"), "needs strsclnt and certutil: apt-get install libnss3-tools"),
              arguments: [
                  ("tls1.2", false, false), ("tls1.2", true, false), ("tls1.3", true, false),
                  ("tls1.2", false, true), ("tls1.3", true, true),
              ])
        func resumptionAcrossWorkers(version: String, tickets: Bool, rsa: Bool) async throws {
            try await withTimeout(seconds: 120) {
                let pki = try await TestPKI.shared()
                let server = try await ServeProcess.start([
                    "--workers", "2",
                    "--cert", rsa ? pki.rsaServerCertificate : pki.serverCertificate,
                    "--key", rsa ? pki.rsaServerKey : pki.serverKey,
                ])
                let workers = await server.process.stderr.waitForLines(count: 2, matching: { $0.contains("worker serving on") })
                #expect(workers.count == 2, "\(server.process.transcript)")
                let connections = 200
                let (hits, output) = try await Strsclnt.resumed(port: server.port, version: version, connections: connections, tickets: tickets)
                _ = await server.process.stderr.waitForLines(count: connections, matching: ServeProcess.isConnectionLine, seconds: 20)
                let byWorker = Self.connectionsByWorker(server)
                let status = await server.process.stop()
                #expect(hits * 100 >= (connections - 1) * 99, "strsclnt resumed \(hits) of \(connections - 1): \(output)")
                #expect(byWorker.count == 2 && byWorker.values.allSatisfy { $0 >= 10 }, "connections per worker: \(byWorker)")
                #expect(status == 0, "\(server.process.transcript)")
            }
        }

        /// The parent launches its workers from several threads at once; a
        /// descriptor made for one worker must not leak into another, or the
        /// first never reads its ticket key to the end and never serves.
        @Test("eight workers launched at once all serve: none waits on a ticket-key pipe that another worker inherited")
        func manyWorkersStart() async throws {
            try await withTimeout(seconds: 120) {
                let pki = try await TestPKI.shared()
                let server = try await ServeProcess.start(["--workers", "8", "--event-loops", "1", "--cert", pki.serverCertificate, "--key", pki.serverKey])
                let serving = await server.process.stderr.waitForLines(count: 8, matching: { $0.contains("worker serving on") }, seconds: 60)
                #expect(serving.count == 8, "\(server.process.transcript)")
                let status = await server.process.stop()
                #expect(status == 0, "\(server.process.transcript)")
            }
        }

        @Test("a killed worker is replaced, SIGHUP reaches every worker, and SIGTERM drains them all: the parent exits 0 and no worker is left",
              .enabled(if: ExternalTool.isInstalled("curl")))
        func supervision() async throws {
            try await withTimeout(seconds: 90) {
                let pki = try await TestPKI.shared()
                let server = try await ServeProcess.start(["--workers", "2", "--cert", pki.serverCertificate, "--key", pki.serverKey, "--grace-period", "5"])
                _ = await server.process.stderr.waitForLines(count: 2, matching: { $0.contains("worker serving on") })
                let first = Self.startedWorkers(server)
                try #require(first.count == 2, "\(server.process.transcript)")

                kill(pid_t(first[0]) ?? 0, SIGKILL)
                let started = await server.process.stderr.waitForLines(count: 3, matching: { $0.contains("worker started") })
                #expect(started.count == 3, "no worker replaced the killed one: \(server.process.transcript)")
                let replacement = Self.startedWorkers(server).last ?? ""
                _ = await server.process.stderr.waitForLine(where: { $0.contains("worker=\(replacement)") && $0.contains("worker serving on") })
                #expect(server.process.stderr.text.contains("worker exited with status 137; starting another"), "\(server.process.transcript)")
                let curl = try await ExternalTool.run("curl", ["-s", "--cacert", pki.caCertificate, "--max-time", "20", "https://localhost:\(server.port)/"])
                #expect(curl.status == 0 && curl.stdout.hasPrefix("peer: "), "\(curl)")

                server.process.signal(SIGHUP)
                let reloads = await server.process.stderr.waitForLines(count: 2, matching: { $0.contains("SIGHUP: reloaded") })
                let reloaded = Set(reloads.compactMap { $0.split(separator: " ").first { $0.hasPrefix("worker=") } })
                #expect(reloaded == ["worker=\(first[1])", "worker=\(replacement)"], "\(server.process.transcript)")

                let status = await server.process.stop()
                #expect(status == 0, "\(server.process.transcript)")
                for worker in [first[1], replacement] {
                    #expect(!Self.isAlive(worker), "worker \(worker) outlived its parent")
                }
            }
        }

        @Test("--workers needs an identity that every worker can load, and a count from 1 to 256", arguments: [
            (["--workers", "2"], "--workers needs --cert/--key"),
            (["--workers", "0", "--cert", "c.pem", "--key", "k.pem"], "--workers must be between 1 and 256"),
        ])
        func badWorkerFlags(arguments: [String], message: String) async throws {
            try await withTimeout(seconds: 30) {
                let output = try await ToolRun.run(["serve"] + arguments, input: "")
                #expect(output.status != 0)
                #expect(output.stderr.contains(message), "\(output)")
            }
        }
    }
}
