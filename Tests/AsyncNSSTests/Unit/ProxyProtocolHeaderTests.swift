import Testing
@testable import AsyncNSS

/// Builders of PROXY protocol headers, as HAProxy writes them.
enum ProxyHeaders {
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    static func v1(_ line: String) -> [UInt8] { Array(line.utf8) }

    /// A version 2 PROXY header over TCP/IPv4 with `fields` as TLVs.
    static func v2(source: [UInt8], sourcePort: UInt16, destination: [UInt8], destinationPort: UInt16, fields: [(UInt8, [UInt8])] = [], command: UInt8 = 0x21) -> [UInt8] {
        let family: UInt8 = source.count == 4 ? 0x11 : 0x21
        var body = source + destination
        body += [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF)]
        for (type, value) in fields {
            body += [type, UInt8(value.count >> 8), UInt8(value.count & 0xFF)] + value
        }
        return signature + [command, family, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
    }

    /// A version 2 LOCAL header, as HAProxy's health checks send it.
    static func v2Local() -> [UInt8] {
        signature + [0x20, 0x00, 0x00, 0x00]
    }
}

@Suite("PROXY protocol header parser", .timeLimit(.minutes(1)))
struct ProxyProtocolHeaderTests {
    typealias Header = ProxyProtocolHeader

    func complete(_ bytes: [UInt8]) -> (Header, Int)? {
        if case .complete(let header, let length) = Header.parse(bytes) { return (header, length) }
        return nil
    }

    func isInvalid(_ bytes: [UInt8]) -> Bool {
        if case .invalid = Header.parse(bytes) { return true }
        return false
    }

    /// The TLS record that follows a header; never part of it.
    let clientHelloStart: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01]

    @Test("v1 TCP4: addresses and ports, and the length stops at CRLF")
    func v1TCP4() throws {
        let line = ProxyHeaders.v1("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n")
        let (header, length) = try #require(complete(line + clientHelloStart))
        #expect(length == line.count)
        #expect(header.version == .v1)
        #expect(header.source == Header.Endpoint(host: "203.0.113.7", port: 56324))
        #expect(header.destination?.description == "192.0.2.1:443")
        #expect(header.fields.isEmpty)
    }

    @Test("v1 TCP6: addresses written canonically, with brackets in the description")
    func v1TCP6() throws {
        let (header, _) = try #require(complete(ProxyHeaders.v1("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 65535 0\r\n")))
        #expect(header.source?.host == "2001:db8::1")
        #expect(header.source?.description == "[2001:db8::1]:65535")
        #expect(header.destination?.description == "[::1]:0")
    }

    @Test("v1 UNKNOWN: no addresses, the rest of the line ignored")
    func v1Unknown() throws {
        let (header, length) = try #require(complete(ProxyHeaders.v1("PROXY UNKNOWN ffff::1 whatever\r\n") + [1, 2]))
        #expect(header.source == nil && header.destination == nil)
        #expect(length == 32)
    }

    @Test("v2 over IPv4 with authority and unique-ID TLVs")
    func v2WithFields() throws {
        let bytes = ProxyHeaders.v2(source: [198, 51, 100, 9], sourcePort: 40000, destination: [10, 0, 0, 1], destinationPort: 8443,
                                    fields: [(0x02, Array("www.example.com".utf8)), (0x05, [1, 2, 3, 4]), (0x04, [])])
        let (header, length) = try #require(complete(bytes + clientHelloStart))
        #expect(length == bytes.count)
        #expect(header.version == .v2)
        #expect(header.source?.description == "198.51.100.9:40000")
        #expect(header.destination?.description == "10.0.0.1:8443")
        #expect(header.authority == "www.example.com")
        #expect(header.uniqueID == [1, 2, 3, 4])
        #expect(header.fields.map(\.type) == [0x02, 0x05, 0x04])
    }

    @Test("v2 over IPv6")
    func v2IPv6() throws {
        let source: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [7]
        let destination: [UInt8] = Array(repeating: 0, count: 15) + [1]
        let (header, _) = try #require(complete(ProxyHeaders.v2(source: source, sourcePort: 1, destination: destination, destinationPort: 2)))
        #expect(header.source?.description == "[2001:db8::7]:1")
        #expect(header.destination?.description == "[::1]:2")
    }

    @Test("v2 LOCAL (a health check) carries no client address")
    func v2Local() throws {
        let (header, length) = try #require(complete(ProxyHeaders.v2Local()))
        #expect(header.source == nil)
        #expect(length == 16)
        // A LOCAL command's addresses, if any, are ignored.
        let withAddresses = ProxyHeaders.v2(source: [1, 2, 3, 4], sourcePort: 1, destination: [5, 6, 7, 8], destinationPort: 2, command: 0x20)
        #expect(try #require(complete(withAddresses)).0.source == nil)
    }

    @Test("every proper prefix of a header asks for more", arguments: [
        ProxyHeaders.v1("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"),
        ProxyHeaders.v2(source: [1, 2, 3, 4], sourcePort: 5, destination: [6, 7, 8, 9], destinationPort: 10, fields: [(0x05, [9, 9])]),
    ])
    func prefixesNeedMore(header: [UInt8]) {
        for count in 0..<header.count {
            #expect(Header.parse(Array(header.prefix(count))) == .needMore, "prefix of \(count) bytes")
        }
        #expect(complete(header) != nil)
    }

    @Test("no header, or a broken one, is invalid", arguments: [
        ("a ClientHello", [0x16, 0x03, 0x01, 0x00, 0xC8]),
        ("an HTTP request", Array("GET / HTTP/1.1\r\n".utf8)),
        ("v1 with a bad protocol", Array("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n".utf8)),
        ("v1 with an IPv6 address under TCP4", Array("PROXY TCP4 ::1 ::1 1 2\r\n".utf8)),
        ("v1 with a port above 65535", Array("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n".utf8)),
        ("v1 with a signed port", Array("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n".utf8)),
        ("v1 with two spaces", Array("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n".utf8)),
        ("v1 with a bare line feed", Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n".utf8)),
        ("v1 without a line end in 107 bytes", Array(("PROXY UNKNOWN " + String(repeating: "x", count: 100)).utf8)),
        ("v2 version 1", ProxyHeaders.signature + [0x11, 0x11, 0, 12] + Array(repeating: 0, count: 12)),
        ("v2 command 2", ProxyHeaders.signature + [0x22, 0x11, 0, 12] + Array(repeating: 0, count: 12)),
        ("v2 family 4", ProxyHeaders.signature + [0x21, 0x41, 0, 0]),
        ("v2 too short for IPv4", ProxyHeaders.signature + [0x21, 0x11, 0, 4, 1, 2, 3, 4]),
        ("v2 longer than 536 bytes", ProxyHeaders.signature + [0x21, 0x11, 0x02, 0x10]),
        ("v2 with a TLV cut short", ProxyHeaders.signature + [0x21, 0x11, 0, 14] + Array(repeating: 1, count: 12) + [0x05, 0x00]),
        ("v2 with a TLV longer than the header", ProxyHeaders.signature + [0x21, 0x11, 0, 16] + Array(repeating: 1, count: 12) + [0x05, 0x00, 0x02, 0x09]),
    ] as [(String, [UInt8])])
    func invalid(name: String, bytes: [UInt8]) {
        #expect(isInvalid(bytes), "\(name): \(Header.parse(bytes))")
    }

    @Test("a unique ID longer than 128 bytes is refused")
    func uniqueIDTooLong() {
        let bytes = ProxyHeaders.v2(source: [1, 2, 3, 4], sourcePort: 1, destination: [1, 2, 3, 4], destinationPort: 1, fields: [(0x05, Array(repeating: 7, count: 129))])
        #expect(isInvalid(bytes))
    }

    @Test("a v2 header of exactly 536 bytes is accepted")
    func v2AtTheLimit() throws {
        let padding = Array(repeating: UInt8(0), count: 536 - 16 - 12 - 3)
        let bytes = ProxyHeaders.v2(source: [1, 2, 3, 4], sourcePort: 1, destination: [1, 2, 3, 4], destinationPort: 1, fields: [(0x04, padding)])
        #expect(bytes.count == 536)
        #expect(try #require(complete(bytes)).1 == 536)
    }
}
