/// An HTTP/1.1 response with a plain-text body, serialised in one piece.
struct HTTPResponse: Sendable, Hashable {
    var status: Int
    var reason: String
    var body: String
    /// Whether the connection stays open afterwards (the Connection field).
    var keepAlive: Bool
    /// Leaves the body out but keeps its Content-Length, as for HEAD.
    var omitsBody = false

    /// The bytes on the wire: status line, fields, blank line, body.
    var serialized: [UInt8] {
        let bodyBytes = Array(body.utf8)
        var head = "HTTP/1.1 \(status) \(reason)\r\n"
        head += "Content-Type: text/plain; charset=utf-8\r\n"
        head += "Content-Length: \(bodyBytes.count)\r\n"
        head += "Connection: \(keepAlive ? "keep-alive" : "close")\r\n"
        head += "\r\n"
        return Array(head.utf8) + (omitsBody ? [] : bodyBytes)
    }

    /// The interim response a client that sent `Expect: 100-continue` waits for.
    static let continueBytes = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// The error response for a head that could not be parsed; it always closes.
    static func rejecting(_ error: HTTPRequestHead.ParseError) -> HTTPResponse {
        let (status, reason, explanation): (Int, String, String) = switch error {
        case .incomplete, .invalidRequestLine: (400, "Bad Request", "malformed request line")
        case .invalidField: (400, "Bad Request", "malformed header field")
        case .invalidContentLength: (400, "Bad Request", "invalid Content-Length")
        case .multipleHosts: (400, "Bad Request", "more than one Host field")
        case .tooManyFields: (431, "Request Header Fields Too Large", "too many header fields")
        case .unsupportedTransferEncoding: (501, "Not Implemented", "Transfer-Encoding is not supported")
        case .unsupportedVersion: (505, "HTTP Version Not Supported", "only HTTP/1.0 and HTTP/1.1 are supported")
        }
        return HTTPResponse(status: status, reason: reason, body: "\(explanation)\n", keepAlive: false)
    }

    /// The response for a head longer than the limit; it always closes.
    static func headTooLarge(limit: Int) -> HTTPResponse {
        HTTPResponse(status: 431, reason: "Request Header Fields Too Large", body: "the request head exceeds \(limit) bytes\n", keepAlive: false)
    }
}
