/// The HTTP-hello exchange: a fixed request and a fixed response.
///
/// HTTP/1.1 requests are answered and the connection stays open
/// (keep-alive). An HTTP/1.0 request, which is what NSS's `strsclnt`
/// sends, gets the response and then the server closes, which is the end
/// `strsclnt` waits for.
public enum HTTPHello {
    public static let request = Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
    public static let response = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world\n".utf8)
    public static let closingResponse = Array("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world\n".utf8)

    /// What to do with one complete request head.
    public enum Answer: Sendable {
        /// Send ``response`` and keep reading.
        case respond
        /// Send ``closingResponse``, then close.
        case respondAndClose
    }

    /// Removes every complete request head (up to a blank line) from the
    /// front of `buffer` and returns the answer each one gets. Request bodies
    /// are not expected.
    public static func takeRequests(from buffer: inout [UInt8]) -> [Answer] {
        var answers: [Answer] = []
        var start = 0
        var index = 0
        while index + 3 < buffer.count {
            if buffer[index] == 13, buffer[index + 1] == 10, buffer[index + 2] == 13, buffer[index + 3] == 10 {
                answers.append(isHTTP10(buffer[start..<index]) ? .respondAndClose : .respond)
                index += 4
                start = index
            } else {
                index += 1
            }
        }
        if start > 0 { buffer.removeFirst(start) }
        return answers
    }

    /// Whether the request line ends in `HTTP/1.0`.
    private static func isHTTP10(_ head: ArraySlice<UInt8>) -> Bool {
        let line = head.prefix { $0 != 13 }
        return line.count >= 8 && Array(line.suffix(8)) == Array("HTTP/1.0".utf8)
    }
}
