import Foundation
import Testing
@testable import AsyncNSS

@Suite("PEM and Base64", .timeLimit(.minutes(1)))
struct PEMTests {
    func randomBytes(_ count: Int, using random: inout UnitSeededGenerator) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
    }

    /// Parses `text` expecting a `PEMError`; records an issue and returns nil if it parses.
    func parseError(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> PEMError? {
        do {
            let blocks = try PEM.parse(text)
            Issue.record("expected a PEMError, parsed \(blocks.count) block(s)", sourceLocation: sourceLocation)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Base64

    @Test("Base64 matches the RFC 4648 test vectors")
    func base64Vectors() {
        let vectors = [
            ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
        ]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(Array(encoded.utf8)) == Array(plain.utf8))
        }
        #expect(Base64.encode([0xFB, 0xFF, 0xBF]) == "+/+/")
        #expect(Base64.decode(Array("+/+/".utf8)) == [0xFB, 0xFF, 0xBF])
    }

    @Test("Base64 agrees with Foundation on random bytes of every length up to 300")
    func base64AgainstFoundation() {
        var random = UnitSeededGenerator(seed: 0xBA5E_64)
        for length in 0...300 {
            for _ in 0..<3 {
                let bytes = randomBytes(length, using: &random)
                let reference = Data(bytes).base64EncodedString()
                let encoded = Base64.encode(bytes)
                #expect(encoded == reference, "length \(length)")
                #expect(Base64.decode(Array(reference.utf8)) == bytes, "length \(length)")
                #expect(Data(base64Encoded: encoded).map { [UInt8]($0) } == bytes, "length \(length)")
            }
        }
    }

    @Test(
        "Base64.decode rejects malformed input",
        arguments: [
            "Zg=",        // length not a multiple of 4
            "Zm9vY",      // length not a multiple of 4
            "Zm9*",       // character outside the alphabet
            "Zm9-",       // base64url is not accepted
            "Zm9_",
            "Zm 9",       // whitespace
            "Zm9v\n",     // a newline
            "=Zm9",       // padding first
            "Z===",       // three padding characters
            "Zg=v",       // data after padding
            "Zg==Zm9v",   // padding before the last quantum
            "Zm8=Zm8=",
            "====",
            "Zm9\u{E9}",  // non-ASCII
        ]
    )
    func base64Rejects(text: String) {
        #expect(Base64.decode(Array(text.utf8)) == nil)
    }

    @Test("Base64.decode rejects every byte outside the alphabet")
    func base64RejectsEveryForeignByte() {
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        for byte in UInt8.min...UInt8.max where !alphabet.contains(byte) && byte != UInt8(ascii: "=") {
            #expect(Base64.decode([UInt8(ascii: "A"), UInt8(ascii: "A"), UInt8(ascii: "A"), byte]) == nil, "byte \(byte)")
        }
        for byte in alphabet {
            #expect(Base64.decode([UInt8(ascii: "A"), UInt8(ascii: "A"), UInt8(ascii: "A"), byte])?.count == 3)
        }
    }

    // MARK: Encoding

    @Test("PEM.encode wraps base64 at 64 characters between BEGIN and END lines")
    func encodeLayout() {
        var random = UnitSeededGenerator(seed: 64)
        let der = randomBytes(100, using: &random)
        let text = PEM.encode(label: "CERTIFICATE", der: der)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.first == "-----BEGIN CERTIFICATE-----")
        #expect(lines.last == "", "ends with a newline")
        #expect(lines[lines.count - 2] == "-----END CERTIFICATE-----")
        let body = Array(lines[1..<(lines.count - 2)])
        #expect(body.map(\.count) == [64, 64, 8])  // 100 bytes are 136 base64 characters
        #expect(body.joined() == Data(der).base64EncodedString())
    }

    @Test("PEM.encode puts exactly 48 bytes on one line and 49 on two")
    func encodeLineBoundary() {
        let one = PEM.encode(label: "X", der: [UInt8](repeating: 0xAB, count: 48))
        #expect(one.split(separator: "\n").count == 3)
        let two = PEM.encode(label: "X", der: [UInt8](repeating: 0xAB, count: 49))
        #expect(two.split(separator: "\n").map(\.count) == [17, 64, 4, 15])
    }

    @Test("PEM.parse reads back what PEM.encode wrote, for every length up to 300")
    func roundTrip() throws {
        var random = UnitSeededGenerator(seed: 0x9E3)
        for length in 1...300 {
            let der = randomBytes(length, using: &random)
            let label = ["CERTIFICATE", "PRIVATE KEY", "X509 CRL", "TRUSTED-CERTIFICATE"][length % 4]
            let blocks = try PEM.parse(PEM.encode(label: label, der: der))
            #expect(blocks == [PEMBlock(label: label, der: der)], "length \(length)")
        }
    }

    // MARK: Parsing

    @Test("several blocks come back in order, with text outside them ignored")
    func severalBlocks() throws {
        let text = """
            Bag Attributes
                localKeyID: 01 02 03
            subject=/CN=leaf
            -----BEGIN CERTIFICATE-----
            Zm9v
            -----END CERTIFICATE-----
            a comment between blocks: with a colon
            -----BEGIN CERTIFICATE-----
            YmFy
            YmF6
            -----END CERTIFICATE-----

            -----BEGIN PRIVATE KEY-----
            cXV4
            -----END PRIVATE KEY-----
            trailing text
            """
        let blocks = try PEM.parse(text)
        #expect(blocks == [
            PEMBlock(label: "CERTIFICATE", der: Array("foo".utf8)),
            PEMBlock(label: "CERTIFICATE", der: Array("barbaz".utf8)),
            PEMBlock(label: "PRIVATE KEY", der: Array("qux".utf8)),
        ])
    }

    @Test("a document with no block parses to nothing")
    func noBlocks() throws {
        #expect(try PEM.parse("").isEmpty)
        #expect(try PEM.parse("just some text\nand more\n").isEmpty)
        // Malformed boundaries are just text outside blocks.
        #expect(try PEM.parse("-----BEGIN -----\n-----BEGIN cert_x-----\n----BEGIN X-----\n-----BEGIN X----\n").isEmpty)
    }

    @Test("RFC 1421 headers and blank lines inside a block are skipped")
    func headersSkipped() throws {
        let text = """
            -----BEGIN RSA PRIVATE KEY-----
            Proc-Type: 4,ENCRYPTED
            DEK-Info: AES-128-CBC,0123456789ABCDEF0123456789ABCDEF

            Zm9vYmFy
            -----END RSA PRIVATE KEY-----
            """
        #expect(try PEM.parse(text) == [PEMBlock(label: "RSA PRIVATE KEY", der: Array("foobar".utf8))])
    }

    @Test("whitespace around lines is ignored")
    func whitespaceTrimmed() throws {
        let text = "  -----BEGIN CERTIFICATE-----  \n\tZm9v  \n   YmFy\n-----END CERTIFICATE-----\t\n"
        #expect(try PEM.parse(text) == [PEMBlock(label: "CERTIFICATE", der: Array("foobar".utf8))])
    }

    @Test("base64 may be split across lines at any point")
    func base64SplitAnywhere() throws {
        let text = "-----BEGIN X-----\nZm\n9vY\nmFy\n-----END X-----"
        #expect(try PEM.parse(text) == [PEMBlock(label: "X", der: Array("foobar".utf8))])
    }

    @Test("CRLF line endings parse like LF")
    func crlf() throws {
        var random = UnitSeededGenerator(seed: 13)
        let der = randomBytes(150, using: &random)
        let lf = PEM.encode(label: "CERTIFICATE", der: der)
        let crlf = lf.replacingOccurrences(of: "\n", with: "\r\n")
        #expect(try PEM.parse(lf) == [PEMBlock(label: "CERTIFICATE", der: der)])
        // "\r\n" is one Character in Swift; the parser splits on every newline.
        #expect(try PEM.parse(crlf) == [PEMBlock(label: "CERTIFICATE", der: der)])
    }

    @Test("CRLF errors report the right line")
    func crlfErrorLine() {
        let error = parseError("text\r\n-----BEGIN X-----\r\nZm9v\r\n")
        #expect(error?.line == 2)
    }

    // MARK: Errors

    @Test("END without BEGIN names its line")
    func endWithoutBegin() {
        let error = parseError("hello\n\n-----END CERTIFICATE-----\n")
        #expect(error?.line == 3)
        #expect(error?.reason == "END CERTIFICATE without a BEGIN")
        #expect(error?.description == "line 3: END CERTIFICATE without a BEGIN")
    }

    @Test("END after a complete block is still an END without BEGIN")
    func endAfterBlock() {
        let error = parseError("-----BEGIN X-----\nZm9v\n-----END X-----\n-----END X-----\n")
        #expect(error?.line == 4)
        #expect(error?.reason.contains("without a BEGIN") == true)
    }

    @Test("an END with another label names the END line")
    func mismatchedLabels() {
        let error = parseError("intro\n-----BEGIN CERTIFICATE-----\nZm9v\n-----END PRIVATE KEY-----\n")
        #expect(error?.line == 4)
        #expect(error?.reason == "END PRIVATE KEY closes a CERTIFICATE block")
    }

    @Test("a block with no END names its BEGIN line")
    func missingEnd() {
        let error = parseError("-----BEGIN A-----\nZm9v\n-----END A-----\nmore\n-----BEGIN CERTIFICATE-----\nZm9v\n")
        #expect(error?.line == 5)
        #expect(error?.reason == "the CERTIFICATE block has no END line")
    }

    @Test("a BEGIN inside a block names both lines")
    func nestedBegin() {
        let error = parseError("-----BEGIN OUTER-----\nZm9v\n-----BEGIN INNER-----\nZm9v\n-----END INNER-----\n-----END OUTER-----\n")
        #expect(error?.line == 3)
        #expect(error?.reason == "BEGIN INNER inside the OUTER block that starts on line 1")
    }

    @Test(
        "invalid base64 inside a block is reported at the block's BEGIN line",
        arguments: [
            "Zm9*",        // a character outside the alphabet
            "Zm9v YmFy",   // a space inside a line
            "Zm9vYg",      // missing padding
            "Zg==\nZm9v",  // padding before the end of the block
            "Zg=v",        // data after padding
            "Z===",        // too much padding
            "Zm9v\u{E9}AA",  // non-ASCII (8 bytes)
        ]
    )
    func invalidBase64(body: String) {
        let error = parseError("first line\n\n-----BEGIN CERTIFICATE-----\n\(body)\n-----END CERTIFICATE-----\n")
        #expect(error?.line == 3)
        #expect(error?.reason == "the CERTIFICATE block is not valid base64")
    }

    @Test("an empty block is an error at its BEGIN line")
    func emptyBlock() {
        let error = parseError("x\n-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
        #expect(error?.line == 2)
        #expect(error?.reason == "the CERTIFICATE block is empty")
        // Only headers and blank lines is empty too.
        let headersOnly = parseError("-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\n\n-----END X-----")
        #expect(headersOnly?.reason == "the X block is empty")
        // What PEM.encode writes for no bytes does not parse.
        #expect(parseError(PEM.encode(label: "X", der: []))?.line == 1)
    }

    @Test("an error in a later block is reported even after good blocks")
    func errorAfterGoodBlocks() {
        let good = PEM.encode(label: "CERTIFICATE", der: Array(repeating: 1, count: 100))  // 5 lines
        let error = parseError(good + good + "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
        #expect(error?.line == 11)
    }

    // MARK: Robustness

    @Test("arbitrary PEM-like input either parses or throws a PEMError with a real line")
    func neverCrashes() throws {
        let fragments = [
            "-----BEGIN ", "-----END ", "-----", "----", "CERTIFICATE", "KEY", "X", " ", "  ", "\t",
            "\n", "\n", "\n", "\r\n", "\r", "Zm9v", "YmFy", "Zg==", "Zm8=", "=", "==", "A", "+", "/", "-", ":",
            "Proc-Type: 4,ENCRYPTED", "é", "\u{0}", "\u{301}", "😀", "BEGIN", "END",
            "-----BEGIN X-----\n", "-----END X-----\n", "-----BEGIN Y-----\n", "-----END Y-----\n",
        ]
        var random = UnitSeededGenerator(seed: 0xF022)
        var parsed = 0
        var failed = 0
        for _ in 0..<4000 {
            let count = Int.random(in: 0...40, using: &random)
            let text = (0..<count).map { _ in fragments.randomElement(using: &random)! }.joined()
            let lineCount = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).count
            do {
                let blocks = try PEM.parse(text)
                parsed += 1
                for block in blocks {
                    #expect(!block.label.isEmpty)
                    #expect(!block.der.isEmpty)
                }
                // What was read writes back and reads again the same.
                let rewritten = blocks.map { PEM.encode(label: $0.label, der: $0.der) }.joined()
                #expect(try PEM.parse(rewritten) == blocks, "input \(text.debugDescription)")
            } catch {
                failed += 1
                #expect((1...lineCount).contains(error.line), "line \(error.line) of \(lineCount) for \(text.debugDescription)")
                #expect(!error.reason.isEmpty)
            }
        }
        // The alphabet is rich enough to reach both outcomes.
        #expect(parsed > 100)
        #expect(failed > 100)
    }
}
