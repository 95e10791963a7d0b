import AsyncNSS

/// Bytes received from a connection but not consumed yet.
struct InboundBuffer {
    let connection: TLSConnection
    /// The unconsumed bytes, oldest first.
    private(set) var bytes: [UInt8] = []

    init(connection: TLSConnection) { self.connection = connection }

    var isEmpty: Bool { bytes.isEmpty }

    /// Receives one more chunk. Returns false once the peer closed with close_notify.
    mutating func fill() async throws -> Bool {
        guard let chunk = try await connection.receive() else { return false }
        bytes += chunk
        return true
    }

    /// Removes and returns the first `count` bytes (at most all of them).
    mutating func take(_ count: Int) -> [UInt8] {
        let taken = Array(bytes.prefix(max(0, count)))
        bytes.removeFirst(taken.count)
        return taken
    }

    /// Removes everything buffered and returns it.
    mutating func takeAll() -> [UInt8] {
        defer { bytes = [] }
        return bytes
    }

    /// Drops empty lines (`CRLF`) before a request, as RFC 9112 allows.
    /// Returns whether anything was dropped.
    @discardableResult
    mutating func dropLeadingEmptyLines() -> Bool {
        var count = 0
        while count < bytes.count {
            if bytes[count] == ASCII.lf {
                count += 1
            } else if count + 1 < bytes.count, bytes[count] == ASCII.cr, bytes[count + 1] == ASCII.lf {
                count += 2
            } else {
                break
            }
        }
        bytes.removeFirst(count)
        return count > 0
    }

    /// Reads and throws away `count` bytes, as for a request body. Returns false
    /// if the peer closed with close_notify first.
    mutating func discard(_ count: Int) async throws -> Bool {
        var remaining = count
        while remaining > 0 {
            if bytes.isEmpty, try await !fill() { return false }
            remaining -= take(remaining).count
        }
        return true
    }
}
