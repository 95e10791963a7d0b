import AsyncNSS
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    /// A process that serves TLS may start other processes. They must not
    /// inherit its sockets: a copy in a child keeps a connection open after
    /// `close()` and a port bound after the server exits.
    @Suite("Sockets stay out of child processes")
    struct ChildProcessTests {
        @Test("a child started with posix_spawn holds none of the listeners' and connections' sockets, TLS and plain TCP, accepted and connected")
        func socketsAreCloseOnExec() async throws {
            try await withTimeout(seconds: 60) {
                let before = SocketInodes.ofThisProcess()
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                var accepted = listener.makeAsyncIterator()
                let server = try #require(try await accepted.next())
                let tcpListener = try await TCPListener.bind(port: 0)
                let tcpClient = try await TCPConnection.connect(host: "127.0.0.1", port: tcpListener.port)
                let tcpServer = try await tcpListener.accept()
                // A socket made without the flag: the child must show it, or
                // the probe below would find nothing whatever we did.
                let control = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                try #require(control >= 0)
                defer { close(control) }

                let ours = SocketInodes.ofThisProcess()
                let controlInode = try #require(SocketInodes.inode(ofDescriptor: control))
                let made = ours.subtracting(before).subtracting([controlInode])
                #expect(made.count >= 6, "the listeners and connections should have made at least 6 sockets: \(made)")

                let inherited = try await SocketInodes.ofSpawnedChild()
                #expect(inherited.contains(controlInode), "the probe did not see a socket without FD_CLOEXEC: \(inherited)")
                #expect(inherited.isDisjoint(with: made), "the child inherited \(inherited.intersection(made).count) of our \(made.count) sockets")

                await tcpServer.close()
                await tcpClient.close()
                await tcpListener.close()
                await server.close()
                await client.close()
                await listener.close()
            }
        }
    }
}

/// The sockets a process holds, by inode (`socket:[N]` in `/proc/PID/fd`).
private enum SocketInodes {
    static func ofThisProcess() -> Set<String> {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return Set(entries.compactMap { Int32($0) }.filter { $0 > 2 }.compactMap { inode(ofDescriptor: $0) })
    }

    static func inode(ofDescriptor descriptor: Int32) -> String? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)"),
              target.hasPrefix("socket:") else { return nil }
        return target
    }

    /// Starts `/bin/sh` with `posix_spawn` and no file actions, so it gets
    /// every descriptor that is not close-on-exec, and returns the sockets it
    /// held above standard error.
    static func ofSpawnedChild() async throws -> Set<String> {
        let directory = try TemporaryDirectory()
        let output = directory.file("fds")
        let script = "for f in /proc/$$/fd/*; do n=${f##*/}; [ \"$n\" -gt 2 ] && readlink \"$f\"; done > '\(output)'; true"
        let status = try await onOwnThread { () throws -> Int32 in
            let argv: [UnsafeMutablePointer<CChar>?] = [String](["/bin/sh", "-c", script]).map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            var pid: pid_t = 0
            let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ)
            guard spawned == 0 else { return -spawned }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0, errno == EINTR {}
            return status
        }
        #expect(status == 0, "sh exited with wait status \(status)")
        let text = try String(contentsOfFile: output, encoding: .utf8)
        return Set(text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("socket:") })
    }
}
