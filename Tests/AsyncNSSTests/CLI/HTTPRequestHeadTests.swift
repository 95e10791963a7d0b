@testable import nss_tls
import Testing

/// The request-head parser of `nss-tls serve`: a pure value, tested without I/O.
@Suite(.timeLimit(.minutes(1)))
struct HTTPRequestHeadTests {
    typealias ParseError = HTTPRequestHead.ParseError

    private static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    private static func parse(_ text: String) throws(ParseError) -> HTTPRequestHead {
        try HTTPRequestHead(parsing: bytes(text))
    }

    /// The error `text` is rejected with, or nil if it parses.
    private static func error(_ text: String) -> ParseError? {
        error(bytes(text))
    }

    private static func error(_ bytes: [UInt8]) -> ParseError? {
        do throws(ParseError) {
            _ = try HTTPRequestHead(parsing: bytes)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Valid heads

    @Test("GET over HTTP/1.1: request line, fields, defaults")
    func get11() throws {
        let head = try Self.parse("GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1.0\r\nAccept: */*\r\n\r\n")
        #expect(head.method == "GET")
        #expect(head.target == "/index.html?q=1")
        #expect(head.version == .http11)
        #expect(head.version.description == "HTTP/1.1")
        #expect(head.fields == [
            .init(name: "Host", value: "example.com"),
            .init(name: "User-Agent", value: "test/1.0"),
            .init(name: "Accept", value: "*/*"),
        ])
        #expect(head.contentLength == 0)
        #expect(head.keepAlive)
        #expect(!head.expectsContinue)
        #expect(head.value(of: "host") == "example.com")
        #expect(head.value(of: "USER-AGENT") == "test/1.0")
        #expect(head.value(of: "Missing") == nil)
    }

    @Test("GET over HTTP/1.0 without fields")
    func get10() throws {
        let head = try Self.parse("GET / HTTP/1.0\r\n\r\n")
        #expect(head.method == "GET")
        #expect(head.target == "/")
        #expect(head.version == .http10)
        #expect(head.version.description == "HTTP/1.0")
        #expect(head.fields.isEmpty)
        #expect(head.contentLength == 0)
        #expect(!head.keepAlive)
        #expect(!head.expectsContinue)
    }

    @Test("bare LF line ends are accepted, alone or mixed with CRLF (RFC 9112 §2.2)")
    func bareLineFeeds() throws {
        let bare = try Self.parse("GET /x HTTP/1.1\nHost: h\nConnection: close\n\n")
        #expect(bare.target == "/x")
        #expect(bare.value(of: "host") == "h")
        #expect(!bare.keepAlive)
        let mixed = try Self.parse("GET / HTTP/1.1\r\nHost: h\n\r\n")
        #expect(mixed.value(of: "Host") == "h")
    }

    @Test("HEAD, OPTIONS with an asterisk, CONNECT with an authority and an extension method")
    func otherMethods() throws {
        let headRequest = try Self.parse("HEAD /status HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(headRequest.method == "HEAD")
        #expect(headRequest.target == "/status")
        let options = try Self.parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(options.method == "OPTIONS")
        #expect(options.target == "*")
        let connect = try Self.parse("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        #expect(connect.target == "example.com:443")
        let custom = try Self.parse("M-SEARCH! http://host/abs?x=%20 HTTP/1.0\r\n\r\n")
        #expect(custom.method == "M-SEARCH!")
        #expect(custom.target == "http://host/abs?x=%20")
    }

    @Test("POST with a Content-Length body announcement (HTTP/1.0 and 1.1)", arguments: ["HTTP/1.0", "HTTP/1.1"])
    func post(version: String) throws {
        let head = try Self.parse("POST /submit \(version)\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 42\r\n\r\n")
        #expect(head.method == "POST")
        #expect(head.contentLength == 42)
        #expect(head.version.description == version)
        #expect(head.keepAlive == (version == "HTTP/1.1"))
    }

    @Test("field values lose surrounding spaces and tabs, keep inner ones and obs-text")
    func fieldValues() throws {
        var raw = Self.bytes("GET / HTTP/1.1\r\nX-Spaces: \t a  b \t \r\nX-Empty:\r\nX-Only-Spaces:    \r\nX-Colon: a:b: c\r\nX-Obs: ")
        raw += [0xC3, 0xA9, 0x80, 0xFF]
        raw += Self.bytes("\r\n\r\n")
        let head = try HTTPRequestHead(parsing: raw)
        #expect(head.value(of: "x-spaces") == "a  b")
        #expect(head.value(of: "x-empty") == "")
        #expect(head.value(of: "x-only-spaces") == "")
        #expect(head.value(of: "x-colon") == "a:b: c")
        #expect(head.value(of: "x-obs") != nil)
        #expect(head.fields.count == 5)
    }

    @Test("value(of:) returns the first of repeated fields")
    func repeatedFields() throws {
        let head = try Self.parse("GET / HTTP/1.1\r\nAccept: a\r\naccept: b\r\n\r\n")
        #expect(head.value(of: "Accept") == "a")
        #expect(head.fields.count == 2)
    }

    @Test("exactly maximumFieldCount fields are accepted")
    func maximumFields() throws {
        let fields = (0..<HTTPRequestHead.maximumFieldCount).map { "X-\($0): \($0)\r\n" }.joined()
        let head = try Self.parse("GET / HTTP/1.1\r\n" + fields + "\r\n")
        #expect(head.fields.count == HTTPRequestHead.maximumFieldCount)
    }

    // MARK: Keep-alive and Expect

    @Test("keep-alive follows the version and the Connection options", arguments: [
        ("HTTP/1.1", nil, true),
        ("HTTP/1.1", "close", false),
        ("HTTP/1.1", "Close", false),
        ("HTTP/1.1", "keep-alive", true),
        ("HTTP/1.1", "Upgrade, CLOSE", false),
        ("HTTP/1.1", "keep-alive, close", false),
        ("HTTP/1.1", "upgrade", true),
        ("HTTP/1.0", nil, false),
        ("HTTP/1.0", "keep-alive", true),
        ("HTTP/1.0", "Keep-Alive", true),
        ("HTTP/1.0", " keep-alive , foo ", true),
        ("HTTP/1.0", "Keep-Alive, close", false),
        ("HTTP/1.0", "close", false),
        ("HTTP/1.0", "keep-alive-not", false),
    ] as [(String, String?, Bool)])
    func keepAlive(version: String, connection: String?, expected: Bool) throws {
        let field = connection.map { "Connection: \($0)\r\n" } ?? ""
        let head = try Self.parse("GET / \(version)\r\nHost: h\r\n\(field)\r\n")
        #expect(head.keepAlive == expected)
    }

    @Test("keep-alive reads every Connection field")
    func keepAliveAcrossFields() throws {
        #expect(try !Self.parse("GET / HTTP/1.1\r\nConnection: upgrade\r\nConnection: close\r\n\r\n").keepAlive)
        #expect(try Self.parse("GET / HTTP/1.0\r\nConnection: upgrade\r\nconnection: keep-alive\r\n\r\n").keepAlive)
    }

    @Test("Expect: 100-continue counts only over HTTP/1.1")
    func expectContinue() throws {
        #expect(try Self.parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n").expectsContinue)
        #expect(try Self.parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nexpect: 100-Continue\r\n\r\n").expectsContinue)
        #expect(try !Self.parse("POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n").expectsContinue)
        #expect(try !Self.parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: something-else\r\n\r\n").expectsContinue)
    }

    // MARK: Content-Length

    @Test("well-formed Content-Length values", arguments: [
        ("Content-Length: 0\r\n", 0),
        ("Content-Length: 5\r\n", 5),
        ("content-length:\t17 \r\n", 17),
        ("Content-Length: 007\r\n", 7),
        ("Content-Length: 5, 5\r\n", 5),
        ("Content-Length: 5,5,5\r\n", 5),
        ("Content-Length: 5\r\nContent-Length: 5\r\n", 5),
        ("Content-Length: 9223372036854775807\r\n", Int.max),
        ("", 0),
    ])
    func contentLength(fields: String, expected: Int) throws {
        #expect(try Self.parse("POST / HTTP/1.1\r\nHost: h\r\n\(fields)\r\n").contentLength == expected)
    }

    @Test("malformed or conflicting Content-Length values", arguments: [
        "Content-Length: -1\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: abc\r\n",
        "Content-Length: 5x\r\n",
        "Content-Length: 0x10\r\n",
        "Content-Length: 1 2\r\n",
        "Content-Length: 1.5\r\n",
        "Content-Length:\r\n",
        "Content-Length: 5,\r\n",
        "Content-Length: ,5\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5\r\ncontent-length: \r\n",
        "Content-Length: 9223372036854775808\r\n",
        "Content-Length: 99999999999999999999999999\r\n",
    ])
    func invalidContentLength(fields: String) {
        #expect(Self.error("POST / HTTP/1.1\r\nHost: h\r\n\(fields)\r\n") == .invalidContentLength)
    }

    // MARK: Every ParseError

    @Test("incomplete: no blank line at the end, or bytes after it", arguments: [
        "",
        "\r\n",
        "\r\n\r",
        "GET / HTTP/1.1",
        "GET / HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n",
        "GET / HTTP/1.1\nHost: h\n",
        "GET / HTTP/1.1\r\n\r\nX",
        "GET / HTTP/1.1\r\n\r\n\r",
        "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n",
    ])
    func incomplete(text: String) {
        #expect(Self.error(text) == .incomplete)
    }

    @Test("invalidRequestLine", arguments: [
        "\r\n\r\n",
        "\r\n\r\n\r\n",
        "GET\r\n\r\n",
        "GET /\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        " GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",
        "GET / HTTP/1.1 extra\r\n\r\n",
        "GET /a b HTTP/1.1\r\n\r\n",
        "GET\t/ HTTP/1.1\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        "GÉT / HTTP/1.1\r\n\r\n",
        "GET /é HTTP/1.1\r\n\r\n",
        "GET / HTTP/1\r\n\r\n",
        "GET / HTTP/1.\r\n\r\n",
        "GET / HTTP/11\r\n\r\n",
        "GET / HTTP/1.10\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "GET / HTTPS/1.1\r\n\r\n",
        "GET / HTTP/a.b\r\n\r\n",
        "GET / HTTP/1,1\r\n\r\n",
        "GET / HTTP/1.1\rHost: h\r\n\r\n",
        "get / HTTP/1.1\r\n\r\n",
        "Get / HTTP/1.1\r\n\r\n",
    ])
    func invalidRequestLine(text: String) {
        #expect(Self.error(text) == .invalidRequestLine)
    }

    @Test("invalidRequestLine for control characters in the target")
    func controlCharactersInTarget() {
        for byte: UInt8 in [0x00, 0x01, 0x09, 0x1F, 0x7F, 0x80, 0xFF] {
            var raw = Self.bytes("GET /")
            raw.append(byte)
            raw += Self.bytes(" HTTP/1.1\r\n\r\n")
            #expect(Self.error(raw) == .invalidRequestLine, "byte \(byte)")
        }
    }

    @Test("unsupportedVersion: well formed but not 1.0 or 1.1", arguments: ["HTTP/0.9", "HTTP/1.2", "HTTP/1.9", "HTTP/2.0", "HTTP/3.0", "HTTP/9.1"])
    func unsupportedVersion(version: String) {
        #expect(Self.error("GET / \(version)\r\nHost: h\r\n\r\n") == .unsupportedVersion)
    }

    @Test("invalidField", arguments: [
        "NoColon\r\n",
        ": empty-name\r\n",
        "Host : space-before-colon\r\n",
        "Host\t: tab-before-colon\r\n",
        " Host: leading-space\r\n",
        "Host: h\r\n folded continuation\r\n",
        "Host: h\r\n\tfolded continuation\r\n",
        "Bad(Name): x\r\n",
        "Bad Name: x\r\n",
        "Host: bare\nLF\r\n",
        "Host: bare\rCR\r\n",
    ])
    func invalidField(fields: String) {
        #expect(Self.error("GET / HTTP/1.1\r\n\(fields)\r\n") == .invalidField)
    }

    @Test("invalidField for control characters in a name or value")
    func controlCharactersInFields() {
        for byte: UInt8 in [0x00, 0x01, 0x08, 0x0B, 0x0C, 0x1B, 0x1F, 0x7F] {
            var value = Self.bytes("GET / HTTP/1.1\r\nX-Value: a")
            value.append(byte)
            value += Self.bytes("b\r\n\r\n")
            #expect(Self.error(value) == .invalidField, "value byte \(byte)")
            var name = Self.bytes("GET / HTTP/1.1\r\nX-Na")
            name.append(byte)
            name += Self.bytes("me: v\r\n\r\n")
            #expect(Self.error(name) == .invalidField, "name byte \(byte)")
        }
        var obsTextName = Self.bytes("GET / HTTP/1.1\r\nX-")
        obsTextName += [0xC3, 0xA9]
        obsTextName += Self.bytes(": v\r\n\r\n")
        #expect(Self.error(obsTextName) == .invalidField)
    }

    @Test("tooManyFields: one more than maximumFieldCount")
    func tooManyFields() {
        let fields = (0...HTTPRequestHead.maximumFieldCount).map { "X-\($0): \($0)\r\n" }.joined()
        #expect(Self.error("GET / HTTP/1.1\r\n" + fields + "\r\n") == .tooManyFields)
    }

    @Test("multipleHosts, whatever the case of the names")
    func multipleHosts() {
        #expect(Self.error("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n") == .multipleHosts)
        #expect(Self.error("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\nhOST: b\r\n\r\n") == .multipleHosts)
    }

    @Test("unsupportedTransferEncoding for any Transfer-Encoding field", arguments: [
        "Transfer-Encoding: chunked\r\n",
        "transfer-encoding: gzip, chunked\r\n",
        "TRANSFER-ENCODING: identity\r\n",
        "Transfer-Encoding:\r\n",
    ])
    func transferEncoding(fields: String) {
        #expect(Self.error("POST / HTTP/1.1\r\nHost: h\r\n\(fields)\r\n") == .unsupportedTransferEncoding)
    }

    @Test("each ParseError maps to the documented error response")
    func rejectingResponses() {
        let expected: [(ParseError, Int)] = [
            (.incomplete, 400), (.invalidRequestLine, 400), (.invalidField, 400), (.invalidContentLength, 400),
            (.multipleHosts, 400), (.tooManyFields, 431), (.unsupportedTransferEncoding, 501), (.unsupportedVersion, 505),
        ]
        for (error, status) in expected {
            let response = HTTPResponse.rejecting(error)
            #expect(response.status == status, "\(error)")
            #expect(!response.keepAlive, "\(error)")
            let text = String(decoding: response.serialized, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 \(status) \(response.reason)\r\n"), "\(text)")
            #expect(text.contains("\r\nConnection: close\r\n"), "\(text)")
            #expect(text.contains("\r\nContent-Length: \(response.body.utf8.count)\r\n"), "\(text)")
            #expect(text.hasSuffix("\r\n\r\n" + response.body), "\(text)")
        }
    }

    @Test("a HEAD response keeps the Content-Length but leaves the body out")
    func headResponse() {
        var response = HTTPResponse(status: 200, reason: "OK", body: "héllo\n", keepAlive: true)
        let full = String(decoding: response.serialized, as: UTF8.self)
        #expect(full == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 7\r\nConnection: keep-alive\r\n\r\nhéllo\n")
        response.omitsBody = true
        let headOnly = String(decoding: response.serialized, as: UTF8.self)
        #expect(headOnly == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 7\r\nConnection: keep-alive\r\n\r\n")
    }

    // MARK: endOfHead

    @Test("endOfHead finds the index just past the first blank line")
    func endOfHead() {
        let head = Self.bytes("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(HTTPRequestHead.endOfHead(in: head) == head.count)
        #expect(HTTPRequestHead.endOfHead(in: head + Self.bytes("body")) == head.count)
        #expect(HTTPRequestHead.endOfHead(in: head + head) == head.count)
        #expect(HTTPRequestHead.endOfHead(in: head + head, searchingFrom: head.count - 4) == head.count)
        // The blank line's first LF is at count - 3.
        #expect(HTTPRequestHead.endOfHead(in: head + head, searchingFrom: head.count - 3) == head.count)
        #expect(HTTPRequestHead.endOfHead(in: head + head, searchingFrom: head.count - 2) == 2 * head.count)
        #expect(HTTPRequestHead.endOfHead(in: head + head, searchingFrom: 2 * head.count) == nil)
        #expect(HTTPRequestHead.endOfHead(in: head, searchingFrom: -10) == head.count)
        #expect(HTTPRequestHead.endOfHead(in: head, searchingFrom: head.count) == nil)
        #expect(HTTPRequestHead.endOfHead(in: head, searchingFrom: 1 << 40) == nil)
        #expect(HTTPRequestHead.endOfHead(in: head, searchingFrom: Int.min) == head.count)
        #expect(HTTPRequestHead.endOfHead(in: []) == nil)
        #expect(HTTPRequestHead.endOfHead(in: Self.bytes("\r\n\r")) == nil)
        #expect(HTTPRequestHead.endOfHead(in: Self.bytes("\r\n\r\n")) == 4)
        #expect(HTTPRequestHead.endOfHead(in: Self.bytes("\r\r\n\r\n")) == 5)
        // Bare LFs end lines too (RFC 9112 §2.2).
        #expect(HTTPRequestHead.endOfHead(in: Self.bytes("GET / HTTP/1.1\n\nHost: h\r\n")) == 16)
        #expect(HTTPRequestHead.endOfHead(in: Self.bytes("a\r\n\n\r\n")) == 4)
        #expect(HTTPRequestHead.endOfHead(in: Self.bytes("a\n\r\n")) == 4)
        #expect(HTTPRequestHead.endOfHead(in: Self.bytes("a\n\r")) == nil)
    }

    @Test("endOfHead with a start near Int.max returns nil instead of trapping")
    func endOfHeadHugeStart() async {
        // Run in a child process: an arithmetic overflow would trap.
        await #expect(processExitsWith: .success) {
            let head = Array("GET / HTTP/1.1\r\n\r\n".utf8)
            precondition(HTTPRequestHead.endOfHead(in: head, searchingFrom: Int.max) == nil)
            precondition(HTTPRequestHead.endOfHead(in: head, searchingFrom: Int.max - 2) == nil)
        }
    }

    @Test("endOfHead searched from every offset of a growing buffer finds the same end")
    func endOfHeadIncremental() {
        let stream = Self.bytes("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
        // As serve does: search again from three bytes before the old end.
        var searchFrom = 0
        var found: Int?
        for length in 0...stream.count {
            let buffer = Array(stream.prefix(length))
            if let end = HTTPRequestHead.endOfHead(in: buffer, searchingFrom: searchFrom) {
                found = end
                #expect(length == stream.count)
                break
            }
            searchFrom = max(0, buffer.count - 3)
        }
        #expect(found == stream.count)
    }

    // MARK: classify(prefix:)

    @Test("classify: complete HTTP/1.x request lines", arguments: [
        "GET / HTTP/1.1\r\n",
        "GET / HTTP/1.0\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "HEAD /x HTTP/1.1\r\n",
        "POST /submit HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
        "OPTIONS * HTTP/1.1\r\n",
        "CONNECT example.com:443 HTTP/1.1\r\n",
        "BREW /pot?milk=1#x HTTP/1.1\r\n",
        "VERSION-CONTROL / HTTP/1.1\r\n",
        "GET / HTTP/1.1\n",
        "GET / HTTP/1.0\nHost: h\n\n",
    ])
    func classifyRequestLine(text: String) {
        #expect(HTTPRequestHead.classify(prefix: Self.bytes(text)) == .requestLine)
    }

    @Test("classify: partial request lines need more bytes", arguments: [
        "",
        "G",
        "GET",
        "GET ",
        "GET /",
        "GET /index.html",
        "GET / ",
        "GET / H",
        "GET / HTTP/1",
        "GET / HTTP/1.",
        "GET / HTTP/1.1",
        "GET / HTTP/1.1\r",
    ])
    func classifyNeedMoreBytes(text: String) {
        #expect(HTTPRequestHead.classify(prefix: Self.bytes(text)) == .needMoreBytes)
    }

    @Test("classify: bytes that cannot start an HTTP/1.x request line", arguments: [
        "hello",
        "ping",
        "h",
        "get / HTTP/1.1\r\n",
        "Get / HTTP/1.1\r\n",
        "-GET / HTTP/1.1\r\n",
        "ABCDEFGHIJKLMNOPQRSTUVWXY / HTTP/1.1\r\n",
        "hello\n",
        "ping\r\n",
        "hello world\n",
        " GET / HTTP/1.1\r\n",
        "\r\nGET / HTTP/1.1\r\n",
        "GET  / HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\r",
        "GET / HTTP/1.1 \r\n",
        "GET / HTTP/1.2\r\n",
        "GET / HTTP/2.0\r\n",
        "GET / HTTP/2",
        "GET / http/1.1\r\n",
        "GET / HTTPS",
        "GET /a\tb HTTP/1.1\r\n",
        "GET\t/ HTTP/1.1\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "SSH-2.0-OpenSSH_9.6\r\n",
        "(GET) / HTTP/1.1\r\n",
        "{\"json\": true}",
    ])
    func classifyNotRequestLine(text: String) {
        #expect(HTTPRequestHead.classify(prefix: Self.bytes(text)) == .notRequestLine)
    }

    @Test("classify: binary first bytes are not a request line")
    func classifyBinary() {
        // A TLS ClientHello record header, a NUL, a DEL, a UTF-8 byte, a lone CR.
        for prefix: [UInt8] in [[0x16, 0x03, 0x01, 0x02, 0x00], [0x00], [0x7F], [0xC3, 0xA9], [0x0D], [0x0A], [0x80]] {
            #expect(HTTPRequestHead.classify(prefix: prefix) == .notRequestLine, "\(prefix)")
        }
        // A target with a byte outside VCHAR.
        for byte: UInt8 in [0x00, 0x0D, 0x0A, 0x7F, 0x80, 0xFF] {
            #expect(HTTPRequestHead.classify(prefix: Self.bytes("GET /") + [byte]) == .notRequestLine, "byte \(byte)")
        }
    }

    @Test("classify: every prefix of a request line needs more bytes until its CRLF is complete")
    func classifyEveryPrefix() {
        let line = Self.bytes("PUT /some/path?x=y HTTP/1.1\r\n")
        let stream = line + Self.bytes("Host: h\r\nContent-Length: 0\r\n\r\n")
        for length in 0...stream.count {
            let verdict = HTTPRequestHead.classify(prefix: Array(stream.prefix(length)))
            #expect(verdict == (length < line.count ? .needMoreBytes : .requestLine), "prefix length \(length)")
        }
    }

    // MARK: Random input

    /// Fragments that make inputs look like HTTP often enough to reach every branch.
    private static let fragments: [[UInt8]] = [
        "GET", "HEAD", "POST", "PUT", "OPTIONS", "get", "M-SEARCH", " ", "  ", "\t", "/", "/index.html", "*", "?q=1",
        "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/1.", "HTTP/", "http/1.1",
        "\r\n", "\r\n", "\r\n", "\r\n\r\n", "\r", "\n", ":", ": ", ",", ", ",
        "Host", "host", "Content-Length", "content-length", "Transfer-Encoding", "chunked",
        "Connection", "close", "keep-alive", "Expect", "100-continue", "X-Test",
        "0", "5", "42", "-1", "007", "99999999999999999999", "9223372036854775807", "abc",
    ].map { Array($0.utf8) }

    private static func randomInput(_ generator: inout UnitSeededGenerator) -> [UInt8] {
        var input: [UInt8] = []
        let pieces = Int.random(in: 0...24, using: &generator)
        for _ in 0..<pieces {
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<7:
                input += fragments.randomElement(using: &generator)!
            case 7..<9:
                for _ in 0..<Int.random(in: 1...6, using: &generator) {
                    input.append(UInt8.random(in: 0...255, using: &generator))
                }
            default:
                // A plausible field line.
                input += Array("\(["Host", "Content-Length", "Connection", "Expect", "X"].randomElement(using: &generator)!): ".utf8)
                input += fragments.randomElement(using: &generator)!
                input += [ASCII.cr, ASCII.lf]
            }
        }
        switch Int.random(in: 0..<4, using: &generator) {
        case 0: break
        case 1: input += [ASCII.cr, ASCII.lf]
        default: input += [ASCII.cr, ASCII.lf, ASCII.cr, ASCII.lf]
        }
        return input
    }

    /// A valid head with one byte replaced, inserted or removed.
    private static func mutatedHead(_ generator: inout UnitSeededGenerator) -> [UInt8] {
        var input = bytes([
            "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            "POST /p HTTP/1.0\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n",
            "HEAD /x?y HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1, 1\r\n\r\n",
        ].randomElement(using: &generator)!)
        let position = Int.random(in: 0..<input.count, using: &generator)
        let byte = UInt8.random(in: 0...255, using: &generator)
        switch Int.random(in: 0..<3, using: &generator) {
        case 0: input[position] = byte
        case 1: input.insert(byte, at: position)
        default: input.remove(at: position)
        }
        return input
    }

    /// What must hold for every input: parsing either succeeds or throws a
    /// ParseError, and a successful parse is consistent with classify and endOfHead.
    private static func checkInvariants(_ input: [UInt8], seed: UInt64, index: Int) -> Bool {
        let verdict = HTTPRequestHead.classify(prefix: input)
        _ = HTTPRequestHead.endOfHead(in: input, searchingFrom: index % (input.count + 2) - 1)
        let head: HTTPRequestHead
        do throws(ParseError) {
            head = try HTTPRequestHead(parsing: input)
        } catch {
            // The only errors are ParseError (typed throws); incomplete means no final blank line.
            // A blank line: LF LF or LF CR LF (CRLF and bare LF line ends).
            let endsWithBlankLine = input.suffix(2).elementsEqual([10, 10]) || input.suffix(3).elementsEqual([10, 13, 10])
            #expect((error == .incomplete) == !endsWithBlankLine, "seed \(seed) input \(index): \(error) for \(input)")
            return false
        }
        #expect(verdict == .requestLine, "seed \(seed) input \(index): parsed but classified \(verdict): \(input)")
        #expect(HTTPRequestHead.endOfHead(in: input) == input.count, "seed \(seed) input \(index): \(input)")
        #expect(!head.method.isEmpty && head.method.utf8.allSatisfy(ASCII.isTokenCharacter), "seed \(seed) input \(index)")
        #expect(!head.target.isEmpty && head.target.utf8.allSatisfy(ASCII.isVisible), "seed \(seed) input \(index)")
        #expect(head.version == .http10 || head.version == .http11, "seed \(seed) input \(index)")
        #expect(head.fields.count <= HTTPRequestHead.maximumFieldCount, "seed \(seed) input \(index)")
        #expect(head.contentLength >= 0, "seed \(seed) input \(index)")
        #expect(!head.expectsContinue || head.version == .http11, "seed \(seed) input \(index)")
        #expect(head.value(of: "transfer-encoding") == nil, "seed \(seed) input \(index)")
        for field in head.fields {
            #expect(!field.name.isEmpty && field.name.utf8.allSatisfy(ASCII.isTokenCharacter), "seed \(seed) input \(index)")
            #expect(field.value.first != " " && field.value.last != " ", "seed \(seed) input \(index)")
        }
        // Parsing is deterministic.
        #expect((try? HTTPRequestHead(parsing: input)) == head, "seed \(seed) input \(index)")
        return true
    }

    @Test("random HTTP-ish inputs never trap: each parses consistently or throws a ParseError", arguments: [1, 2, 3, 0x5EED] as [UInt64])
    func randomInputs(seed: UInt64) {
        var generator = UnitSeededGenerator(seed: seed)
        var parsed = 0
        var rejected: [ParseError: Int] = [:]
        for index in 0..<4000 {
            let input = index.isMultiple(of: 4) ? Self.mutatedHead(&generator) : Self.randomInput(&generator)
            if Self.checkInvariants(input, seed: seed, index: index) {
                parsed += 1
            } else if let error = Self.error(input) {
                rejected[error, default: 0] += 1
            }
            // Every prefix of some inputs goes through classify too.
            if index.isMultiple(of: 16) {
                for length in 0...input.count { _ = HTTPRequestHead.classify(prefix: Array(input.prefix(length))) }
            }
        }
        // The generator reaches both outcomes and several kinds of rejection.
        #expect(parsed > 0, "seed \(seed): nothing parsed")
        #expect(rejected.count >= 4, "seed \(seed): rejections \(rejected)")
    }

    @Test("purely random bytes never trap")
    func randomBytes() {
        var generator = UnitSeededGenerator(seed: 0xB17E5)
        for index in 0..<5000 {
            var input = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if index.isMultiple(of: 2) { input += [13, 10, 13, 10] }
            _ = Self.checkInvariants(input, seed: 0xB17E5, index: index)
        }
    }
}
