import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A plain, blocking TCP peer for feeding a server bytes it does not expect.
/// Use it only inside ``onOwnThread(_:)``.
struct RawTCP {
    let fd: Int32

    /// Connects to 127.0.0.1:`port`; reads time out after `timeout` seconds.
    init(port: Int, timeout: Double = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var interval = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            let code = errno
            Glibc.close(fd)
            throw POSIXError(.init(rawValue: code) ?? .EIO)
        }
    }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }

    /// Reads until EOF, an error or the timeout; returns what arrived.
    func readAll(limit: Int = 1 << 20) -> [UInt8] {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while received.count < limit {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            received.append(contentsOf: buffer[0..<count])
        }
        return received
    }

    /// Sends a FIN; reading goes on.
    func shutdownOutput() {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Closes with a TCP reset (SO_LINGER 0) instead of a FIN.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.close(fd)
    }

    func close() {
        Glibc.close(fd)
    }

    /// A port nobody listens on right now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Waits until something accepts connections on `port`.
    static func waitUntilListening(port: Int, seconds: Double = 10) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if let probe = try? RawTCP(port: port) {
                probe.close()
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TimedOut(seconds: seconds)
    }

    /// Waits for a listening socket on `port` in the kernel's tables, without
    /// connecting: `openssl ocsp` serves one connection at a time, and a probe
    /// that sends nothing holds it up for good; `openssl s_server -early_data`
    /// counts the probe as one of its connections.
    static func waitUntilListeningWithoutConnecting(port: Int) async throws {
        let hexPort = String(format: ":%04X ", port)
        for _ in 0..<200 {
            for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
                let text = (try? String(contentsOfFile: table, encoding: .utf8)) ?? ""
                // Field 2 is the local address, field 4 the state: 0A is LISTEN.
                if text.split(separator: "\n").contains(where: { line in
                    let fields = line.split(separator: " ")
                    return fields.count > 3 && (fields[1] + " ").hasSuffix(hexPort) && fields[3] == "0A"
                }) { return }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TimedOut(seconds: 10)
    }
}
