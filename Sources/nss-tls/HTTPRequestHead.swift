/// A parsed HTTP/1.0 or HTTP/1.1 request head: the request line and the header fields.
///
/// A pure value with no I/O. Parsing is strict (RFC 9112): CRLF line ends only,
/// tokens for methods and field names, no obsolete line folding, no control
/// characters, one well-formed Content-Length. It never traps on any input.
struct HTTPRequestHead: Sendable, Hashable {
    /// The protocol version of a request: `HTTP/1.0` or `HTTP/1.1`.
    struct Version: Sendable, Hashable, CustomStringConvertible {
        /// The minor version: 0 or 1.
        let minor: UInt8

        static let http10 = Version(minor: 0)
        static let http11 = Version(minor: 1)

        var description: String { "HTTP/1.\(minor)" }
    }

    /// One header field, its value stripped of surrounding whitespace.
    struct Field: Sendable, Hashable {
        let name: String
        let value: String
    }

    /// Why a head was rejected.
    enum ParseError: Error, Sendable, Hashable {
        /// The bytes do not end with the blank line (`CRLF CRLF`) that ends a head.
        case incomplete
        /// The request line is not `method SP target SP HTTP-version CRLF`.
        case invalidRequestLine
        /// The version is well formed but not HTTP/1.0 or HTTP/1.1.
        case unsupportedVersion
        /// A header line is not `name ":" OWS value OWS CRLF`, or uses line folding.
        case invalidField
        /// More than ``HTTPRequestHead/maximumFieldCount`` header fields.
        case tooManyFields
        /// A Content-Length that is not a decimal number, or several that disagree.
        case invalidContentLength
        /// More than one Host field.
        case multipleHosts
        /// A Transfer-Encoding field: chunked bodies are not supported.
        case unsupportedTransferEncoding
    }

    /// How the first bytes of a stream relate to an HTTP/1.x request line.
    enum PrefixVerdict: Sendable, Hashable {
        /// The bytes start with a complete HTTP/1.0 or HTTP/1.1 request line.
        case requestLine
        /// The bytes cannot start an HTTP/1.x request line.
        case notRequestLine
        /// Every byte so far fits a request line, but the line is not complete yet.
        case needMoreBytes
    }

    /// The most header fields a head may carry.
    static let maximumFieldCount = 100

    let method: String
    let target: String
    let version: Version
    let fields: [Field]
    /// The body length announced by Content-Length; 0 when absent.
    let contentLength: Int
    /// Whether the connection stays open after the response.
    let keepAlive: Bool
    /// Whether the client waits for `100 Continue` before sending its body.
    let expectsContinue: Bool

    /// The value of the first field named `name` (case-insensitive).
    func value(of name: String) -> String? {
        fields.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// Parses a head: the request line, the header lines and the blank line that
    /// ends them. `bytes` must end with that blank line and hold nothing after it.
    /// Lines end in CRLF or, as RFC 9112 §2.2 allows a recipient to accept,
    /// in a bare LF.
    init(parsing bytes: [UInt8]) throws(ParseError) {
        // The blank line that ends the head, then the line before it.
        guard bytes.last == ASCII.lf else { throw .incomplete }
        let beforeBlankLine = bytes.count >= 2 && bytes[bytes.count - 2] == ASCII.cr ? bytes.count - 2 : bytes.count - 1
        guard beforeBlankLine > 0, bytes[beforeBlankLine - 1] == ASCII.lf else { throw .incomplete }
        var lines = try Self.splitLines(bytes[..<beforeBlankLine])
        guard !lines.isEmpty else { throw .invalidRequestLine }
        let requestLine = lines.removeFirst()
        let (method, target, version) = try Self.parseRequestLine(requestLine)
        guard lines.count <= Self.maximumFieldCount else { throw .tooManyFields }
        var fields: [Field] = []
        fields.reserveCapacity(lines.count)
        for line in lines {
            fields.append(try Self.parseField(line))
        }
        self.method = method
        self.target = target
        self.version = version
        self.fields = fields
        self.contentLength = try Self.contentLength(in: fields)
        let lowercasedNames = fields.map { $0.name.lowercased() }
        guard lowercasedNames.filter({ $0 == "host" }).count <= 1 else { throw .multipleHosts }
        guard !lowercasedNames.contains("transfer-encoding") else { throw .unsupportedTransferEncoding }
        let connectionOptions = Self.tokens(in: fields, named: "connection")
        if connectionOptions.contains("close") {
            keepAlive = false
        } else {
            keepAlive = version == .http11 || connectionOptions.contains("keep-alive")
        }
        expectsContinue = version == .http11 && Self.tokens(in: fields, named: "expect").contains("100-continue")
    }

    // MARK: Finding and recognising heads

    /// The index just past the first blank line (`CRLF CRLF`, or with bare
    /// LFs) whose first line end is at or after `start`, if there is one.
    static func endOfHead(in bytes: [UInt8], searchingFrom start: Int = 0) -> Int? {
        var index = max(0, start)
        while index < bytes.count {
            if bytes[index] == ASCII.lf {
                // `count - index` rather than `index + n < count`: no overflow for any start.
                if bytes.count - index > 1, bytes[index + 1] == ASCII.lf { return index + 2 }
                if bytes.count - index > 2, bytes[index + 1] == ASCII.cr, bytes[index + 2] == ASCII.lf { return index + 3 }
            }
            index += 1
        }
        return nil
    }

    /// Whether `prefix`, the first bytes a client sent, begins an HTTP/1.0 or
    /// HTTP/1.1 request line: a method, a space, a target, a space,
    /// `HTTP/1.0` or `HTTP/1.1`, then CRLF or a bare LF.
    ///
    /// Methods are case-sensitive and every registered one is in capitals,
    /// so a first byte that is not a capital letter (`hello`) decides for
    /// echo at once instead of after a line's worth of bytes.
    /// What a request line's version starts with.
    private static let versionLiteral = Array("HTTP/1.".utf8)

    static func classify(prefix: [UInt8]) -> PrefixVerdict {
        let literal = Self.versionLiteral
        var state = RequestLineState.method
        var partLength = 0
        for byte in prefix {
            switch state {
            case .method:
                if byte == ASCII.space, partLength > 0 {
                    state = .target
                    partLength = 0
                } else if Self.isMethodCharacter(byte, first: partLength == 0), partLength < Self.maximumMethodLength {
                    partLength += 1
                } else {
                    return .notRequestLine
                }
            case .target:
                if byte == ASCII.space, partLength > 0 {
                    state = .versionLiteral(0)
                } else if ASCII.isVisible(byte) {
                    partLength += 1
                } else {
                    return .notRequestLine
                }
            case .versionLiteral(let matched):
                guard byte == literal[matched] else { return .notRequestLine }
                state = matched + 1 == literal.count ? .minor : .versionLiteral(matched + 1)
            case .minor:
                guard byte == UInt8(ascii: "0") || byte == UInt8(ascii: "1") else { return .notRequestLine }
                state = .cr
            case .cr:
                if byte == ASCII.lf { return .requestLine }
                guard byte == ASCII.cr else { return .notRequestLine }
                state = .lf
            case .lf:
                return byte == ASCII.lf ? .requestLine : .notRequestLine
            }
        }
        return .needMoreBytes
    }

    /// The longest method ``classify(prefix:)`` waits for (`VERSION-CONTROL` has 15 letters).
    static let maximumMethodLength = 24

    /// A capital letter first; then any token character but a small letter
    /// (`M-SEARCH`, `VERSION-CONTROL`).
    private static func isMethodCharacter(_ byte: UInt8, first: Bool) -> Bool {
        if (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) { return true }
        return !first && ASCII.isTokenCharacter(byte) && !(UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
    }

    /// Where ``classify(prefix:)`` is within a request line.
    private enum RequestLineState { case method, target, versionLiteral(Int), minor, cr, lf }

    // MARK: Parsing pieces

    /// Splits lines that end in CRLF or a bare LF; a bare CR anywhere is an error.
    private static func splitLines(_ bytes: ArraySlice<UInt8>) throws(ParseError) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var lineStart = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == ASCII.lf {
                lines.append(bytes[lineStart..<index])
                index += 1
                lineStart = index
            } else if byte == ASCII.cr {
                let next = index + 1
                guard next < bytes.endIndex, bytes[next] == ASCII.lf else {
                    throw lines.isEmpty ? .invalidRequestLine : .invalidField
                }
                lines.append(bytes[lineStart..<index])
                index = next + 1
                lineStart = index
            } else {
                index += 1
            }
        }
        // `bytes` ends with a line end, so nothing is left over.
        guard lineStart == bytes.endIndex else { throw .invalidField }
        return lines
    }

    private static func parseRequestLine(_ line: ArraySlice<UInt8>) throws(ParseError) -> (String, String, Version) {
        // The method, the target and the rest, split at the first two spaces.
        guard let firstSpace = line.firstIndex(of: ASCII.space) else { throw .invalidRequestLine }
        let afterMethod = line[(firstSpace + 1)...]
        guard let secondSpace = afterMethod.firstIndex(of: ASCII.space) else { throw .invalidRequestLine }
        let method = line[..<firstSpace], target = afterMethod[..<secondSpace], version = afterMethod[(secondSpace + 1)...]
        guard !method.isEmpty, method.count <= maximumMethodLength,
              method.indices.allSatisfy({ isMethodCharacter(method[$0], first: $0 == method.startIndex) }) else { throw .invalidRequestLine }
        guard !target.isEmpty, target.allSatisfy(ASCII.isVisible) else { throw .invalidRequestLine }
        return (String(decoding: method, as: UTF8.self), String(decoding: target, as: UTF8.self), try parseVersion(version))
    }

    /// `HTTP/1.0` and `HTTP/1.1` are accepted; any other `HTTP/x.y` is unsupported.
    private static func parseVersion(_ bytes: ArraySlice<UInt8>) throws(ParseError) -> Version {
        let text = bytes[...]
        let start = text.startIndex
        guard text.count == 8, text.prefix(5).elementsEqual("HTTP/".utf8), text[start + 6] == UInt8(ascii: "."),
              ASCII.isDigit(text[start + 5]), ASCII.isDigit(text[start + 7]) else {
            throw .invalidRequestLine
        }
        let major = text[start + 5] - UInt8(ascii: "0"), minor = text[start + 7] - UInt8(ascii: "0")
        guard major == 1, minor <= 1 else { throw .unsupportedVersion }
        return Version(minor: minor)
    }

    private static func parseField(_ line: ArraySlice<UInt8>) throws(ParseError) -> Field {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw .invalidField }
        let name = line[line.startIndex..<colon]
        // Rejects obsolete folding (a leading space) and space before the colon.
        guard !name.isEmpty, name.allSatisfy(ASCII.isTokenCharacter) else { throw .invalidField }
        var value = line[(colon + 1)...]
        while let first = value.first, ASCII.isWhitespace(first) { value = value.dropFirst() }
        while let last = value.last, ASCII.isWhitespace(last) { value = value.dropLast() }
        guard value.allSatisfy(ASCII.isFieldValueCharacter) else { throw .invalidField }
        return Field(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
    }

    /// The agreed Content-Length, 0 without one. Repeated values (in several
    /// fields or a comma list) must all be equal.
    private static func contentLength(in fields: [Field]) throws(ParseError) -> Int {
        var length: Int?
        for field in fields where field.name.lowercased() == "content-length" {
            for item in field.value.split(separator: ",", omittingEmptySubsequences: false) {
                guard let value = decimal(item.trimmingWhitespace().utf8) else { throw .invalidContentLength }
                if let length, length != value { throw .invalidContentLength }
                length = value
            }
        }
        return length ?? 0
    }

    /// A non-negative decimal number without sign or spaces, or nil (also on overflow).
    private static func decimal(_ digits: some Collection<UInt8>) -> Int? {
        guard !digits.isEmpty else { return nil }
        var value = 0
        for digit in digits {
            guard ASCII.isDigit(digit) else { return nil }
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = shifted.addingReportingOverflow(Int(digit - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
        }
        return value
    }

    /// The lowercased comma-separated tokens of every field named `name`.
    private static func tokens(in fields: [Field], named name: String) -> Set<String> {
        var result = Set<String>()
        for field in fields where field.name.lowercased() == name {
            for item in field.value.split(separator: ",") {
                let token = item.trimmingWhitespace().lowercased()
                if !token.isEmpty { result.insert(token) }
            }
        }
        return result
    }
}

private extension Substring {
    /// Drops spaces and tabs from both ends.
    func trimmingWhitespace() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result = result.dropFirst() }
        while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
        return result
    }
}
