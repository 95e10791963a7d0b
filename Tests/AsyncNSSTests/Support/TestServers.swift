import AsyncNSS
import Testing

/// Line and HTTP responders for interop tests: read one request, answer, close
/// with close_notify.
enum TestServers {
    /// Serves connections until the listener closes: reads up to `terminator`,
    /// then writes `reply(request, connection)` and closes. An error of a
    /// connection or of the listener is recorded as an issue of the running
    /// test unless `expected` accepts it.
    static func respond(
        _ listener: TLSListener,
        until terminator: String,
        expected: @escaping @Sendable (any Error) -> Bool = { _ in false },
        sourceLocation: SourceLocation = #_sourceLocation,
        reply: @escaping @Sendable (String, TLSConnectionInfo) -> String
    ) async {
        await withDiscardingTaskGroup { group in
            do {
                for try await connection in listener {
                    group.addTask {
                        var request: [UInt8] = []
                        do {
                            for try await chunk in connection.inbound {
                                request += chunk
                                if String(decoding: request, as: UTF8.self).contains(terminator) { break }
                            }
                            try await connection.write(Array(reply(String(decoding: request, as: UTF8.self), connection.info).utf8))
                        } catch where !(error is CancellationError) && !expected(error) {
                            Issue.record(error, "the test server's connection with \(connection.remoteAddress) failed", sourceLocation: sourceLocation)
                        } catch {}
                        await connection.close()
                    }
                }
            } catch where !(error is CancellationError) {
                Issue.record(error, "the test server's listener failed", sourceLocation: sourceLocation)
            } catch {}
        }
    }

    /// Answers one line with `pong: <line>`.
    static func pong(_ listener: TLSListener) async {
        await respond(listener, until: "\n") { request, info in
            "pong: \(request.split(separator: "\n").first ?? "") \(info.protocolVersion)\n"
        }
    }

    /// Answers an HTTP request with 200 and a body naming the version.
    static func http(_ listener: TLSListener) async {
        await respond(listener, until: "\r\n\r\n") { _, info in
            let body = "hello over \(info.protocolVersion) with \(info.cipherSuite)\n"
            return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        }
    }

    /// Reads until `marker` has arrived.
    static func read(_ connection: TLSConnection, through marker: String) async throws -> String {
        var received: [UInt8] = []
        for try await chunk in connection.inbound {
            received += chunk
            if String(decoding: received, as: UTF8.self).contains(marker) { break }
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// Reads until the peer closes, tolerating a close without close_notify
    /// (some tools skip it); returns the bytes and whether it was truncated.
    static func readToEnd(_ connection: TLSConnection) async throws -> (text: String, truncated: Bool) {
        var received: [UInt8] = []
        do {
            for try await chunk in connection.inbound { received += chunk }
            return (String(decoding: received, as: UTF8.self), false)
        } catch let error as TLSError where error.kind == .truncated {
            return (String(decoding: received, as: UTF8.self), true)
        }
    }
}
