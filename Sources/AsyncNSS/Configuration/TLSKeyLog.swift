import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A file that receives the TLS 1.3 secrets of every connection made with a
/// configuration that names it (``TLSConfiguration/keyLog``), in the
/// `SSLKEYLOGFILE` format that Wireshark and tshark read, so that a capture
/// of those connections can be decrypted.
///
/// - Important: For debugging only. Whoever can read the file can decrypt
///   every connection it lists. It is created readable by its owner alone,
///   and the listener or client that uses it logs a warning naming it.
///
/// NSS reports each secret as it derives it (`SSL_SecretCallback`, TLS 1.3
/// only): the handshake and application traffic secrets of both sides, and
/// the early data secret. TLS 1.2 connections are not logged: NSS has no
/// interface that hands out their master secret. Lines are written by a
/// thread of the key log's own, never by the event loop that derived them.
public final class TLSKeyLog: Sendable {
    /// The file's path.
    public let path: String
    private let writer: KeyLogWriter
    private let announced = Atomic<Bool>(false)

    private init(path: String, writer: KeyLogWriter) {
        self.path = path
        self.writer = writer
    }

    deinit { writer.stop() }

    /// Opens `path` for appending, creating it (mode 0600) if needed.
    public static func file(_ path: String) async throws -> TLSKeyLog {
        let services = try Runtime.shared.services()
        let descriptor = try await services.blockingPool.run { () -> Int32 in
            let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                throw TLSError(kind: .invalidConfiguration, operation: "opening the TLS key log \(path)", message: "open(2) failed with errno \(errno)")
            }
            return descriptor
        }
        return TLSKeyLog(path: path, writer: KeyLogWriter(descriptor: descriptor))
    }

    /// Where the warning goes when the configuration names no logger.
    static var defaultLogger: Logger { Logger(label: "AsyncNSS.TLSKeyLog") }

    /// Logs, once per key log, that secrets are being written.
    func announce(to logger: Logger) {
        guard !announced.exchange(true, ordering: .relaxed) else { return }
        logger.warning("TLS key log on: the secrets of every TLS 1.3 connection go to \(path); whoever reads it can decrypt them")
    }

    /// Queues one line: `LABEL CLIENT_RANDOM SECRET`, in hex.
    func record(label: String, clientRandom: [UInt8], secret: [UInt8]) {
        writer.append("\(label) \(Self.hex(clientRandom)) \(Self.hex(secret))\n")
    }

    /// The NSS Key Log label of a TLS 1.3 secret: `epoch` as NSS's secret
    /// callback numbers them (1 early, 2 handshake, 3 + N application
    /// traffic secret N), written by the client when `fromClient`.
    static func label(epoch: UInt16, fromClient: Bool) -> String? {
        let side = fromClient ? "CLIENT" : "SERVER"
        switch epoch {
        case 0: return nil
        case 1: return fromClient ? "CLIENT_EARLY_TRAFFIC_SECRET" : nil
        case 2: return "\(side)_HANDSHAKE_TRAFFIC_SECRET"
        default: return "\(side)_TRAFFIC_SECRET_\(epoch - 3)"
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// The thread that writes a key log's lines: NSS derives secrets on the
/// event loops, which must not wait for a file.
private final class KeyLogWriter: Sendable {
    private struct State {
        var lines: [String] = []
        var stopping = false
    }

    private let state = Mutex(State())
    private let wake = WakeSignal()

    /// Starts the writer thread, which owns `descriptor` and closes it
    /// after ``stop()``. The thread keeps this object until then.
    init(descriptor: Int32) {
        OwnedThread(name: "nss-keylog") { [self] in
            run(descriptor)
        }.detach()
    }

    func append(_ line: String) {
        state.withLock { $0.lines.append(line) }
        wake.signal()
    }

    func stop() {
        state.withLock { $0.stopping = true }
        wake.signal()
    }

    private func run(_ descriptor: Int32) {
        defer { close(descriptor) }
        while true {
            let (lines, stopping) = state.withLock { state -> ([String], Bool) in
                defer { state.lines.removeAll() }
                return (state.lines, state.stopping)
            }
            for line in lines {
                var bytes = Array(line.utf8)
                var offset = 0
                while offset < bytes.count {
                    let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                    if written > 0 { offset += written } else if errno != EINTR { break }
                }
                for index in bytes.indices { bytes[index] = 0 }
            }
            if stopping { return }
            wake.wait()
        }
    }
}

/// A wake-up for one waiting thread: a counting semaphore, so that no
/// `signal` is lost, whether or not the thread already waits.
// @unchecked Sendable: the semaphore is made in init and destroyed in
// deinit; between the two, sem_post and sem_wait are safe from any thread.
private final class WakeSignal: @unchecked Sendable {
    private let semaphore: UnsafeMutablePointer<sem_t>

    init() {
        semaphore = .allocate(capacity: 1)
        sem_init(semaphore, 0, 0)
    }

    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
    }

    func signal() {
        sem_post(semaphore)
    }

    func wait() {
        while sem_wait(semaphore) != 0, errno == EINTR {}
    }
}
