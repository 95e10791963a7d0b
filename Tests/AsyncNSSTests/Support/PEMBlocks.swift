@testable import AsyncNSS
import Foundation

/// The DER of the certificates in PEM text (a tool's output, a chain file),
/// read with the library's own PEM reader.
enum PEMBlocks {
    static func all(in text: String) throws -> [[UInt8]] {
        try PEM.parse(text).filter { $0.label == "CERTIFICATE" }.map(\.der)
    }

    static func all(inFile path: String) throws -> [[UInt8]] {
        try all(in: String(contentsOfFile: path, encoding: .utf8))
    }

    /// The first certificate, or nil when there is none or the text does not parse.
    static func first(in text: String) -> [UInt8]? {
        (try? all(in: text))?.first
    }
}
