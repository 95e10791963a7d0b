/// An HTTP/1.1 response with a plain-text body, serialised in one piece.
struct HTTPResponse: Sendable, Hashable {
    var status: Int
    var reason: String
    var body: String
    /// Whether the connection stays open afterwards (the Connection field).
    var keepAlive: Bool
    /// Leaves the body out but keeps its Content-Length, as for HEAD.
    var omitsBody = false

    /// The bytes on the wire: status line, fields, blank line, body. Written
    /// into one buffer of the right size: every page costs `serve` this once.
    var serialized: [UInt8] {
        let length = body.utf8.count
        let connection = keepAlive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n"
        var bytes: [UInt8] = []
        bytes.reserveCapacity(96 + reason.utf8.count + connection.utf8.count + (omitsBody ? 0 : length))
        bytes.append(contentsOf: "HTTP/1.1 ".utf8)
        bytes.append(contentsOf: String(status).utf8)
        bytes.append(UInt8(ascii: " "))
        bytes.append(contentsOf: reason.utf8)
        bytes.append(contentsOf: "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ".utf8)
        bytes.append(contentsOf: String(length).utf8)
        bytes.append(contentsOf: connection.utf8)
        if !omitsBody { bytes.append(contentsOf: body.utf8) }
        return bytes
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
