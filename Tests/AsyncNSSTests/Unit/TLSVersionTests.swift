import Testing
@testable import AsyncNSS

@Suite("TLSVersion", .timeLimit(.minutes(1)))
struct TLSVersionTests {
    @Test("the named versions carry their wire values")
    func wireValues() {
        #expect(TLSVersion.tls12.wireValue == 0x0303)
        #expect(TLSVersion.tls13.wireValue == 0x0304)
        #expect(TLSVersion(wireValue: 0x0304) == .tls13)
    }

    @Test(
        "description spells versions as OpenSSL does",
        arguments: [
            (UInt16(0x0300), "SSLv3"),
            (0x0301, "TLSv1"),
            (0x0302, "TLSv1.1"),
            (0x0303, "TLSv1.2"),
            (0x0304, "TLSv1.3"),
            (0x0305, "TLSv1.4"),
            (0x7F1C, "TLS(0x7f1c)"),
            (0x0200, "TLS(0x200)"),
            (0xFEFD, "TLS(0xfefd)"),
        ]
    )
    func description(wireValue: UInt16, expected: String) {
        #expect(TLSVersion(wireValue: wireValue).description == expected)
        #expect("\(TLSVersion(wireValue: wireValue))" == expected)
    }

    @Test(
        "parsing accepts the usual spellings of 1.2 and 1.3, in any case",
        arguments: [
            ("1.2", TLSVersion.tls12), ("1.3", .tls13),
            ("tls1.2", .tls12), ("TLS1.3", .tls13),
            ("TLSv1.2", .tls12), ("TLSv1.3", .tls13),
            ("tlsv1.3", .tls13), ("TLSV1.2", .tls12), ("Tlsv1.3", .tls13),
        ]
    )
    func parses(text: String, expected: TLSVersion) {
        #expect(TLSVersion(text) == expected)
    }

    @Test(
        "parsing refuses anything else",
        arguments: [
            "", "1", "1.0", "1.1", "1.4", "2.0", "TLSv1", "TLSv1.0", "TLSv1.1", "SSLv3",
            "v1.2", "tls", "tlsv", "TLS 1.2", "TLSv 1.3", " 1.2", "1.2 ", "TLSv1.2\n", "tlsv1.2.0", "1,2",
            "tlstlsv1.2", "TLS(0x304)", "0x0304", "772",
        ]
    )
    func refuses(text: String) {
        #expect(TLSVersion(text) == nil)
    }

    @Test("description parses back to the same version")
    func descriptionRoundTrips() {
        for version in [TLSVersion.tls12, .tls13] {
            #expect(TLSVersion(version.description) == version)
        }
    }

    @Test("versions order by wire value")
    func ordering() {
        #expect(TLSVersion.tls12 < .tls13)
        #expect(!(TLSVersion.tls13 < .tls12))
        #expect(TLSVersion(wireValue: 0x0301) < .tls12)
        #expect([TLSVersion.tls13, TLSVersion(wireValue: 0x0300), .tls12].sorted() == [TLSVersion(wireValue: 0x0300), .tls12, .tls13])
        #expect(max(TLSVersion.tls12, .tls13) == .tls13)
    }
}
