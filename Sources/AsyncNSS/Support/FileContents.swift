#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads small files (certificates, keys). Blocking: call it on the ``BlockingPool``.
enum FileContents {
    /// The largest file AsyncNSS reads: PEM bundles are far smaller.
    static let limit = 16 * 1024 * 1024

    static func read(_ path: String, purpose: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw TLSError(kind: .invalidIdentity, operation: "reading \(purpose) \(path)", message: "\(reason); check the path and its permissions")
        }
        defer { close(fd) }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                throw TLSError(kind: .invalidIdentity, operation: "reading \(purpose) \(path)", message: reason)
            }
            if count == 0 { break }
            contents.append(contentsOf: chunk[0..<count])
            if contents.count > limit {
                throw TLSError(kind: .invalidIdentity, operation: "reading \(purpose) \(path)", message: "the file is larger than \(limit) bytes; is it really a PEM file?")
            }
        }
        return contents
    }
}
