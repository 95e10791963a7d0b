import Testing
@testable import AsyncNSS

@Suite("DER elements and responder URLs: the parts of OCSP that AsyncNSS parses itself", .timeLimit(.minutes(1)))
struct OCSPParsingTests {
    @Test("DERReader walks nested elements, short and long lengths")
    func walksElements() {
        let inner: [UInt8] = [0x02, 0x01, 0x05] + [0x04, 0x81, 0x80] + [UInt8](repeating: 7, count: 128)
        let bytes: [UInt8] = [0x30, 0x81, UInt8(inner.count)] + inner
        var reader = DERReader(bytes[...])
        let sequence = reader.next(tagged: 0x30)
        #expect(sequence?.encoded.count == bytes.count)
        #expect(reader.isAtEnd)
        var fields = DERReader(sequence?.content ?? [])
        #expect(fields.next(tagged: 0x04) == nil, "a wrong tag consumes nothing")
        #expect(Array(fields.next(tagged: 0x02)?.content ?? []) == [5])
        #expect(fields.next(tagged: 0x04)?.content.count == 128)
        #expect(fields.isAtEnd)
    }

    @Test("DERReader refuses lengths past the end, multi-byte tags and oversized length fields")
    func refusesBadElements() {
        let cases: [[UInt8]] = [
            [0x30, 0x05, 0x01],
            [0x1f, 0x01, 0x00],
            [0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00],
            [0x30, 0x82, 0xff],
            [0x30],
            [],
        ]
        for bytes in cases {
            var reader = DERReader(bytes[...])
            #expect(reader.next() == nil, "\(bytes)")
        }
    }

    @Test("HTTPTarget splits responder URLs and refuses others")
    func splitsURLs() {
        let plain = HTTPTarget("http://ocsp.example.com/")
        #expect(plain?.host == "ocsp.example.com" && plain?.port == 80 && plain?.path == "/")
        let ported = HTTPTarget("HTTP://127.0.0.1:8888")
        #expect(ported?.host == "127.0.0.1" && ported?.port == 8888 && ported?.path == "/")
        let v6 = HTTPTarget("http://[::1]:9000/ocsp/x")
        #expect(v6?.host == "::1" && v6?.port == 9000 && v6?.path == "/ocsp/x")
        for bad in ["https://ocsp.example.com/", "http://:80/", "http://host:99999/", "http://[::1]x/", "ldap://x"] {
            #expect(HTTPTarget(bad) == nil, "\(bad)")
        }
    }

    @Test("HTTP answers: the body of a 200 with its Content-Length, nothing from other statuses")
    func readsAnswers() {
        let ok = Array("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef".utf8)
        #expect(HTTPTarget.isComplete(ok))
        #expect(HTTPTarget.body(ofOKResponse: ok) == Array("abc".utf8))
        let partial = Array("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc".utf8)
        #expect(!HTTPTarget.isComplete(partial))
        let unsized = Array("HTTP/1.0 200 OK\r\n\r\nxyz".utf8)
        #expect(!HTTPTarget.isComplete(unsized))
        #expect(HTTPTarget.body(ofOKResponse: unsized) == Array("xyz".utf8))
        #expect(HTTPTarget.body(ofOKResponse: Array("HTTP/1.0 404 Not Found\r\n\r\nx".utf8)) == nil)
        #expect(HTTPTarget.body(ofOKResponse: Array("garbage".utf8)) == nil)
    }
}
