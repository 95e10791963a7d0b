/// The HTTP-hello exchange: a fixed request and a fixed keep-alive response.
public enum HTTPHello {
    public static let request = Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
    public static let response = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world\n".utf8)

    /// Removes every complete request head (up to a blank line) from the
    /// front of `buffer` and returns how many there were. Bodies are not expected.
    public static func takeRequests(from buffer: inout [UInt8]) -> Int {
        var count = 0
        var consumed = 0
        var index = 0
        while index + 3 < buffer.count {
            if buffer[index] == 13, buffer[index + 1] == 10, buffer[index + 2] == 13, buffer[index + 3] == 10 {
                count += 1
                index += 4
                consumed = index
            } else {
                index += 1
            }
        }
        if consumed > 0 { buffer.removeFirst(consumed) }
        return count
    }
}
