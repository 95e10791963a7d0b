import Glibc
import Logging
@testable import nss_tls
import Testing

/// The log handler of `nss-tls`: the lines it writes to a pipe, in the
/// format of swift-log's `StreamLogHandler`.
@Suite(.timeLimit(.minutes(1)))
struct StandardErrorLogHandlerTests {
    private struct PipeError: Error {}

    /// What `log` writes through a handler whose descriptor is a pipe.
    private static func written(
        _ configure: (inout StandardErrorLogHandler) -> Void = { _ in },
        _ log: (Logger) -> Void
    ) throws -> String {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw PipeError() }
        defer { close(ends[0]) }
        var handler = StandardErrorLogHandler(label: "nss-tls", output: .descriptor(ends[1]), metadataProvider: nil)
        configure(&handler)
        log(Logger(label: "nss-tls") { _ in handler })
        close(ends[1])
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(ends[0], &chunk, chunk.count)
            guard count > 0 else { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The line without its timestamp, after checking that it starts with one.
    private static func withoutTimestamp(_ line: Substring) -> Substring? {
        let stamp = #/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} /#
        guard let match = line.prefixMatch(of: stamp) else { return nil }
        return line[match.range.upperBound...]
    }

    @Test("a line without metadata: timestamp, level, label, source and message")
    func plainLine() throws {
        let output = try Self.written { $0.info("127.0.0.1:5000 TLSv1.3 closed", source: "nss_tls") }
        #expect(output.hasSuffix("\n"))
        let lines = output.split(separator: "\n")
        try #require(lines.count == 1)
        #expect(Self.withoutTimestamp(lines[0]) == "info nss-tls: [nss_tls] 127.0.0.1:5000 TLSv1.3 closed")
    }

    @Test("every line is written whole and in order")
    func severalLines() throws {
        let output = try Self.written { logger in
            for number in 0..<100 { logger.notice("line \(number)", source: "s") }
        }
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 101)
        #expect(lines.last == "")
        for (number, line) in lines.dropLast().enumerated() {
            #expect(Self.withoutTimestamp(line) == "notice nss-tls: [s] line \(number)")
        }
    }

    @Test("the handler's metadata, the event's and an error are merged and sorted by key")
    func metadata() throws {
        struct Refused: Error, CustomStringConvertible { var description: String { "refused" } }
        let output = try Self.written({ $0[metadataKey: "worker"] = "42" }) { logger in
            logger.info("plain", source: "s")
            logger.warning("with more", metadata: ["address": "127.0.0.1:1", "worker": "7"], source: "s")
            logger.error("failed", error: Refused(), source: "s")
        }
        let lines = output.split(separator: "\n").compactMap(Self.withoutTimestamp)
        try #require(lines.count == 3)
        #expect(lines[0] == "info nss-tls: worker=42 [s] plain")
        #expect(lines[1] == "warning nss-tls: address=127.0.0.1:1 worker=7 [s] with more")
        #expect(lines[2].hasPrefix("error nss-tls: error.message=refused error.type="))
        #expect(lines[2].hasSuffix("Refused worker=42 [s] failed"))
    }

    @Test("a line longer than the stack buffer is written whole")
    func longLine() throws {
        let message = String(repeating: "x", count: 3 * StandardErrorLogHandler.stackLineCapacity)
        let output = try Self.written { $0.info("\(message)", source: "s") }
        let lines = output.split(separator: "\n")
        try #require(lines.count == 1)
        #expect(Self.withoutTimestamp(lines[0]) == "info nss-tls: [s] \(message)"[...])
    }

    @Test("the level is the logger's: lines below it are not written")
    func level() throws {
        let output = try Self.written({ $0.logLevel = .warning }) { logger in
            logger.info("hidden", source: "s")
            logger.warning("shown", source: "s")
        }
        #expect(output.split(separator: "\n").compactMap(Self.withoutTimestamp) == ["warning nss-tls: [s] shown"])
    }
}
