import AsyncNSS
import Logging

/// Serves one accepted connection: HTTP/1.x requests get a page describing
/// the connection, anything else is echoed. Logs one line when it ends.
struct ServeSession {
    /// The longest request head accepted; longer ones get `431`.
    static let headLimit = 64 * 1024
    /// How many bytes may arrive before the first line proves to be HTTP;
    /// after that the connection is echoed.
    static let requestLineLimit = 8 * 1024

    let connection: TLSConnection
    let logger: Logger
    let draining: Draining

    /// What the client did, for the log line.
    private struct Activity: CustomStringConvertible {
        enum Mode { case undecided, http, echo }
        var mode = Mode.undecided
        var requests = 0
        var echoedBytes = 0

        var description: String {
            switch mode {
            case .undecided: "no data"
            case .http: "http, \(requests) request\(requests == 1 ? "" : "s")"
            case .echo: "echo, \(echoedBytes) byte\(echoedBytes == 1 ? "" : "s")"
            }
        }
    }

    /// Serves until the peer or an error ends the connection, closes it with
    /// close_notify and logs the outcome.
    func run() async {
        let info = connection.info
        var activity = Activity()
        let outcome: String
        do {
            outcome = try await serve(&activity)
        } catch let error as TLSError where error.kind == .truncated {
            outcome = "closed without close_notify"
        } catch is CancellationError {
            outcome = "closed (server shutting down)"
        } catch {
            outcome = "error: \(error)"
        }
        await connection.close()
        logger.info(Self.logLine(peer: connection.remoteAddress, info: info, activity: activity, outcome: outcome))
    }

    /// `PEER VERSION CIPHER (ACTIVITY): OUTCOME`, written into one string:
    /// every connection logs one at the default level.
    private static func logLine(peer: String, info: TLSConnectionInfo, activity: Activity, outcome: String) -> Logger.Message {
        var line = ""
        line.reserveCapacity(64 + peer.utf8.count + info.cipherSuite.utf8.count + outcome.utf8.count)
        line += peer
        line += " "
        line += info.protocolVersion.description
        line += " "
        line += info.cipherSuite
        line += " ("
        line += activity.description
        line += "): "
        line += outcome
        return Logger.Message(stringLiteral: line)
    }

    /// Looks at the first bytes to choose between HTTP and echo.
    private func serve(_ activity: inout Activity) async throws -> String {
        var buffer = InboundBuffer(connection: connection)
        while true {
            switch HTTPRequestHead.classify(prefix: buffer.bytes) {
            case .requestLine:
                activity.mode = .http
                return try await serveHTTP(&buffer, &activity)
            case .notRequestLine:
                activity.mode = .echo
                return try await echo(&buffer, &activity)
            case .needMoreBytes:
                if buffer.bytes.count >= Self.requestLineLimit {
                    activity.mode = .echo
                    return try await echo(&buffer, &activity)
                }
                guard try await buffer.fill() else {
                    // A clean close before a full line: echo what came.
                    if !buffer.isEmpty {
                        activity.mode = .echo
                        activity.echoedBytes += buffer.bytes.count
                        try await connection.write(buffer.takeAll())
                    }
                    return "closed"
                }
            }
        }
    }

    /// Echoes everything until the peer closes.
    private func echo(_ buffer: inout InboundBuffer, _ activity: inout Activity) async throws -> String {
        if !buffer.isEmpty {
            let pending = buffer.takeAll()
            activity.echoedBytes += pending.count
            try await connection.write(pending)
        }
        while let chunk = try await connection.receive() {
            activity.echoedBytes += chunk.count
            try await connection.write(chunk)
        }
        return "closed"
    }

    /// Answers requests until one asks to close, the peer closes or a request is bad.
    private func serveHTTP(_ buffer: inout InboundBuffer, _ activity: inout Activity) async throws -> String {
        while true {
            let headBytes: [UInt8]
            switch try await readHead(&buffer) {
            case .head(let bytes):
                headBytes = bytes
            case .closed(let cleanly):
                return cleanly ? "closed" : "closed (in the middle of a request head)"
            case .tooLarge:
                let response = HTTPResponse.headTooLarge(limit: Self.headLimit)
                try await connection.write(response.serialized)
                return "closed after \(response.status) \(response.reason)"
            }

            let head: HTTPRequestHead
            do {
                head = try HTTPRequestHead(parsing: headBytes)
            } catch {
                let response = HTTPResponse.rejecting(error)
                try await connection.write(response.serialized)
                return "closed after \(response.status) \(response.reason)"
            }

            if head.expectsContinue, head.contentLength > 0 {
                try await connection.write(HTTPResponse.continueBytes)
            }
            guard try await buffer.discard(head.contentLength) else {
                return "closed (in the middle of a request body)"
            }
            var response = try await ServeRoutes.response(to: head, on: connection, draining: draining)
            response.omitsBody = head.method == "HEAD"
            try await connection.write(response.serialized)
            activity.requests += 1
            if !head.keepAlive { return "closed" }
        }
    }

    private enum HeadRead {
        case head([UInt8])
        /// The peer closed with close_notify; `cleanly` if no partial head was pending.
        case closed(cleanly: Bool)
        case tooLarge
    }

    /// Buffers until a whole head (ending in `CRLF CRLF`) is there and takes it.
    private func readHead(_ buffer: inout InboundBuffer) async throws -> HeadRead {
        var searchFrom = 0
        while true {
            if buffer.dropLeadingEmptyLines() { searchFrom = 0 }
            if let end = HTTPRequestHead.endOfHead(in: buffer.bytes, searchingFrom: searchFrom) {
                return end > Self.headLimit ? .tooLarge : .head(buffer.take(end))
            }
            if buffer.bytes.count > Self.headLimit { return .tooLarge }
            searchFrom = max(0, buffer.bytes.count - 3)
            guard try await buffer.fill() else { return .closed(cleanly: buffer.isEmpty) }
        }
    }
}
