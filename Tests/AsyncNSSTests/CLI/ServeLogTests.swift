import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    /// `serve`'s log on standard error: the event loops only queue the line
    /// of each connection, so a standard error nobody reads does not stop
    /// them.
    @Suite("nss-tls serve log", .timeLimit(.minutes(2)))
    struct ServeLogTests {
        private struct SetupFailed: Error, CustomStringConvertible {
            let description: String
        }

        @Test("serve keeps answering while nobody reads its standard error, and every connection's line arrives once someone does",
              .enabled(if: ExternalTool.isInstalled("strsclnt", "certutil", "curl"), "needs strsclnt, certutil (libnss3-tools) and curl"))
        func stalledStandardError() async throws {
            let directory = try TemporaryDirectory()
            let fifo = directory.path + "/stderr"
            guard mkfifo(fifo, 0o600) == 0 else { throw SetupFailed(description: "mkfifo: \(errno)") }
            // The shell opens the FIFO read-write on descriptor 3, so that
            // opening it for standard error does not wait for a reader, and
            // nobody reads it: after 64 KiB (about 500 lines) a write to it
            // blocks.
            let server = try await ServeProcess.start(launcher: ["/bin/sh", "-c", "exec 3<>\"$0\"; exec \"$@\" 2>\"$0\"", fifo])
            let connections = 1000
            let resumed = try await Strsclnt.resumed(port: server.port, version: "tls1.3", connections: connections)
            #expect(resumed.hits >= connections - 2, "\(resumed.output)")
            let answer = try await ExternalTool.run("curl", ["-sk", "--max-time", "20", "https://127.0.0.1:\(server.port)/"])
            #expect(answer.stdout.contains("TLSv1.3"), "\(answer)")

            // Now read the FIFO until serve, its last writer, has exited.
            let reader = open(fifo, O_RDONLY | O_NONBLOCK)
            guard reader >= 0 else { throw SetupFailed(description: "open: \(errno)") }
            defer { close(reader) }
            server.process.signal(SIGTERM)
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                let count = read(reader, &chunk, chunk.count)
                if count > 0 {
                    bytes += chunk[..<count]
                } else if count == 0 {
                    break
                } else {
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
            let status = await server.process.stop()
            #expect(status == 0, "\(server.process.transcript)")
            let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
            #expect(lines.filter(ServeProcess.isConnectionLine).count == connections + 1, "\(lines.suffix(5))")
            #expect(!lines.contains { $0.contains("dropped") }, "\(lines.filter { $0.contains("dropped") })")
        }
    }
}
