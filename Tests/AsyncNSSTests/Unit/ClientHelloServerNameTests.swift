@testable import AsyncNSS
import Testing

/// The SNI name read from a ClientHello before NSS sees it.
@Suite("ClientHelloServerName")
struct ClientHelloServerNameTests {
    private let hello = RawClientHello(cipherSuites: [0xC02B, 0xC02F], serverName: "alt.example").bytes

    @Test("a whole ClientHello gives its name; every shorter prefix asks for more")
    func prefixes() {
        #expect(ClientHelloServerName.parse(hello) == .complete(serverName: "alt.example"))
        for length in 0..<hello.count {
            #expect(ClientHelloServerName.parse(Array(hello.prefix(length))) == .needMore, "prefix of \(length) bytes")
        }
        // Bytes after the ClientHello (a client that pipelines) change nothing.
        #expect(ClientHelloServerName.parse(hello + [23, 3, 3]) == .complete(serverName: "alt.example"))
    }

    @Test("a ClientHello split over several records is put together")
    func fragmented() {
        let message = Array(hello.dropFirst(5))
        var records: [UInt8] = []
        for start in stride(from: 0, to: message.count, by: 7) {
            let piece = message[start..<min(start + 7, message.count)]
            records += [22, 3, 1, 0, UInt8(piece.count)] + piece
        }
        #expect(ClientHelloServerName.parse(records) == .complete(serverName: "alt.example"))
        #expect(ClientHelloServerName.parse(Array(records.dropLast(1))) == .needMore)
    }

    @Test("what is not a ClientHello is left to NSS")
    func notClientHello() {
        #expect(ClientHelloServerName.parse(Array("GET / HTTP/1.1\r\n".utf8)) == .unreadable)
        #expect(ClientHelloServerName.parse([23, 3, 3, 0, 1, 0]) == .unreadable, "application data")
        #expect(ClientHelloServerName.parse([22, 3, 3, 0, 4, 2, 0, 0, 0]) == .unreadable, "a ServerHello")
        #expect(ClientHelloServerName.parse([22, 3, 3, 0, 0]) == .unreadable, "an empty record")
        #expect(ClientHelloServerName.parse([22, 3, 3, 0x7F, 0xFF]) == .unreadable, "a record longer than TLS allows")
        #expect(ClientHelloServerName.parse([22, 3, 3, 0, 4, 1, 0xFF, 0xFF, 0xFF]) == .unreadable, "a 16 MiB ClientHello")
    }

    @Test("a ClientHello with no name, or a body that ends early, names nothing")
    func noName() {
        let unnamed = RawClientHello(cipherSuites: [0xC02B], serverName: "").bytes
        #expect(ClientHelloServerName.parse(unnamed) == .complete(serverName: nil))
        // A handshake message that claims 8 bytes of body and holds garbage.
        #expect(ClientHelloServerName.parse([22, 3, 3, 0, 12, 1, 0, 0, 8, 3, 3, 1, 2, 3, 4, 5, 6]) == .complete(serverName: nil))
    }

    @Test("random changes to a ClientHello never crash the parser, and reach each outcome")
    func mutations() {
        var random = UnitSeededGenerator(seed: 5746)
        var outcomes: [String: Int] = [:]
        for _ in 0..<20_000 {
            var bytes = hello
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let index = Int.random(in: 0..<bytes.count, using: &random)
                bytes[index] = UInt8.random(in: 0...255, using: &random)
            }
            if Bool.random(using: &random) { bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random))) }
            let result = ClientHelloServerName.parse(bytes)
            switch result {
            case .complete(let name?):
                #expect(name.utf8.count <= 255)
                outcomes["named", default: 0] += 1
            case .complete(serverName: nil): outcomes["unnamed", default: 0] += 1
            case .encrypted: outcomes["encrypted", default: 0] += 1
            case .needMore: outcomes["needMore", default: 0] += 1
            case .unreadable: outcomes["unreadable", default: 0] += 1
            }
        }
        #expect(outcomes.keys.filter { $0 != "encrypted" }.sorted() == ["named", "needMore", "unnamed", "unreadable"], "\(outcomes)")
    }
}
