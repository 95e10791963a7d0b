import CNSS
import Testing
@testable import AsyncNSS

/// How addresses are written: IPv4 by the library itself, IPv6 by NSPR.
@Suite("NetworkAddress", .timeLimit(.minutes(1)))
struct NetworkAddressTests {
    @Test("an IPv4 address is written as NSPR writes it, for edge bytes and random ones")
    func dottedQuadMatchesNSPR() throws {
        var random = UnitSeededGenerator(seed: 4)
        var samples: [UInt32] = [0, 0xFFFF_FFFF, 0x7F00_0001, 0x0A00_0A64, 0x6463_0900, 0x0909_6363]
        samples += (0..<2_000).map { _ in UInt32.random(in: .min ... .max, using: &random) }
        for value in samples {
            var raw = PRNetAddr()
            raw.inet.family = UInt16(PR_AF_INET)
            raw.inet.ip = value
            raw.inet.port = PR_htons(8443)
            let address = NetworkAddress(raw: raw)
            #expect(address.description == "\(NetworkAddress.hostText(raw)):8443")
        }
    }

    @Test("IPv6 addresses, IPv4-mapped ones among them, keep NSPR's form in brackets")
    func ipv6InBrackets() throws {
        let loopback = try #require(NetworkAddress(literal: "::1", port: 443))
        #expect(loopback.description == "[::1]:443")
        let mapped = try #require(NetworkAddress(literal: "::ffff:127.0.0.1", port: 80))
        #expect(mapped.description == "[\(NetworkAddress.hostText(mapped.raw))]:80")
        let v4 = try #require(NetworkAddress(literal: "192.168.10.1", port: 0))
        #expect(v4.description == "192.168.10.1:0")
    }
}
