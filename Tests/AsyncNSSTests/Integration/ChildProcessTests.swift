import AsyncNSS
import CNSS
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

                let inherited = Set(try await SocketInodes.ofSpawnedChild().filter { $0.hasPrefix("socket:") })
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

        /// Every event loop wakes through an eventfd. The kernel names each
        /// eventfd by an ID in `/proc/PID/fdinfo`, so a child's can be
        /// matched with this process's.
        @Test("a child started with posix_spawn holds none of this process's eventfds, the event loops' wakeups among them",
              .enabled(if: SocketInodes.kernelNamesEventfds, "the kernel does not show eventfd-id in fdinfo"))
        func loopWakeupsAreCloseOnExec() async throws {
            try await withTimeout(seconds: 60) {
                // A listener and a connection: the runtime and its loops run.
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                // An eventfd without FD_CLOEXEC: the child must show it.
                let control = cnss_wakeup_open()
                try #require(control >= 0)
                defer { close(control) }
                _ = fcntl(control, F_SETFD, 0)
                let controlID = try #require(SocketInodes.eventfdID(ofDescriptor: control))

                let ours = SocketInodes.eventfdIDsOfThisProcess().subtracting([controlID])
                #expect(!ours.isEmpty, "no eventfd in this process: the loops should wake through eventfds")
                let inherited = Set(try await SocketInodes.ofSpawnedChild().filter { $0.hasPrefix("eventfd-id:") })
                #expect(inherited.contains(controlID), "the probe did not see an eventfd without FD_CLOEXEC: \(inherited)")
                #expect(inherited.isDisjoint(with: ours), "the child inherited \(inherited.intersection(ours).count) of our \(ours.count) eventfds")

                await client.close()
                await listener.close()
            }
        }
    }
}

/// The sockets a process holds, by inode (`socket:[N]` in `/proc/PID/fd`),
/// and its eventfds, by the ID the kernel gives each.
private enum SocketInodes {
    static func ofThisProcess() -> Set<String> {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return Set(entries.compactMap { Int32($0) }.filter { $0 > 2 }.compactMap { inode(ofDescriptor: $0) })
    }

    /// Whether `/proc/PID/fdinfo` names eventfds (Linux 6.2 and later).
    static let kernelNamesEventfds: Bool = {
        let probe = cnss_wakeup_open()
        guard probe >= 0 else { return false }
        defer { close(probe) }
        return eventfdID(ofDescriptor: probe) != nil
    }()

    /// The `eventfd-id:` line of an eventfd's fdinfo, or nil.
    static func eventfdID(ofDescriptor descriptor: Int32) -> String? {
        guard let info = try? String(contentsOfFile: "/proc/self/fdinfo/\(descriptor)", encoding: .utf8) else { return nil }
        return info.split(separator: "\n").first { $0.hasPrefix("eventfd-id:") }.map { $0.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
    }

    static func eventfdIDsOfThisProcess() -> Set<String> {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return Set(entries.compactMap { Int32($0) }.filter { $0 > 2 }.compactMap { eventfdID(ofDescriptor: $0) })
    }

    static func inode(ofDescriptor descriptor: Int32) -> String? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)"),
              target.hasPrefix("socket:") else { return nil }
        return target
    }

    /// Starts `/bin/sh` with `posix_spawn` and no file actions, so it gets
    /// every descriptor that is not close-on-exec, and returns what it held
    /// above standard error: each descriptor's link (`socket:[N]`, ...), and
    /// for an eventfd also its `eventfd-id: N` line.
    static func ofSpawnedChild() async throws -> [String] {
        let directory = try TemporaryDirectory()
        let output = directory.file("fds")
        let script = "for f in /proc/$$/fd/*; do n=${f##*/}; [ \"$n\" -gt 2 ] || continue; t=$(readlink \"$f\"); echo \"$t\"; "
            + "[ \"$t\" = 'anon_inode:[eventfd]' ] && grep '^eventfd-id:' /proc/$$/fdinfo/$n | tr -s ' \\t' ' '; done > '\(output)'; true"
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
        return text.split(separator: "\n").map(String.init)
    }
}
