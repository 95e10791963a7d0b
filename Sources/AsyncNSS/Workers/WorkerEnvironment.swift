#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a ``WorkerLauncher`` hands a worker process, and how the worker
/// finds it: the listening socket on descriptor 3, a pipe with the
/// session-ticket key pair on descriptor 4, and the variable
/// `ASYNCNSS_WORKER` that says so. NSS's own variable, `SSL_INHERITANCE`,
/// carries the shared session cache.
enum WorkerEnvironment {
    static let variable = "ASYNCNSS_WORKER"
    static let listeningDescriptor: Int32 = 3
    static let ticketKeyDescriptor: Int32 = 4
    static var value: String { "listen=\(listeningDescriptor),ticket-key=\(ticketKeyDescriptor)" }

    /// Whether this process was started by a ``WorkerLauncher``.
    static var isWorker: Bool { getenv(variable) != nil }

    /// Reads the ticket key pair's DER from its pipe and closes the pipe. The
    /// parent wrote it all before the worker started, so this does not wait.
    /// It stops at the end of the DER element rather than waiting for the
    /// pipe's end: a copy of the write end that leaked into another process
    /// would keep that end from coming.
    static func readTicketKey() throws -> [UInt8] {
        var der: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        defer {
            close(ticketKeyDescriptor)
            for index in chunk.indices { chunk[index] = 0 }
        }
        while true {
            let count = chunk.withUnsafeMutableBytes { read(ticketKeyDescriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                der += chunk[..<count]
                var reader = DERReader(der[...])
                if reader.next() != nil { break }
                continue
            }
            if count == 0 { break }
            if errno == EINTR { continue }
            throw TLSError(kind: .runtime, operation: "reading the session-ticket key pair from the parent process", message: "read(2) failed with errno \(errno)")
        }
        guard !der.isEmpty else {
            throw TLSError(kind: .runtime, operation: "reading the session-ticket key pair from the parent process", message: "the pipe was empty; was this process started by a WorkerLauncher?")
        }
        return der
    }
}
