/// A block of a PEM file: `-----BEGIN LABEL-----`, base64, `-----END LABEL-----`.
struct PEMBlock: Sendable, Hashable {
    var label: String
    var der: [UInt8]
}

/// Why a PEM document could not be read.
struct PEMError: Error, Sendable, Hashable, CustomStringConvertible {
    var line: Int
    var reason: String
    var description: String { "line \(line): \(reason)" }
}

/// A strict reader and writer of PEM (RFC 7468) documents.
///
/// Text outside blocks is ignored, as OpenSSL does (it often holds
/// `Bag Attributes` or comments). Inside a block only base64 is allowed.
enum PEM {
    static func parse(_ text: String) throws(PEMError) -> [PEMBlock] {
        var blocks: [PEMBlock] = []
        var open: (label: String, line: Int, body: [UInt8])? = nil
        var lineNumber = 0
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            let line = rawLine.trimmingWhitespace()
            if let label = line.boundaryLabel(kind: "BEGIN") {
                if let open {
                    throw PEMError(line: lineNumber, reason: "BEGIN \(label) inside the \(open.label) block that starts on line \(open.line)")
                }
                open = (label, lineNumber, [])
            } else if let label = line.boundaryLabel(kind: "END") {
                guard let current = open else {
                    throw PEMError(line: lineNumber, reason: "END \(label) without a BEGIN")
                }
                guard current.label == label else {
                    throw PEMError(line: lineNumber, reason: "END \(label) closes a \(current.label) block")
                }
                guard let der = Base64.decode(current.body) else {
                    throw PEMError(line: current.line, reason: "the \(label) block is not valid base64")
                }
                guard !der.isEmpty else {
                    throw PEMError(line: current.line, reason: "the \(label) block is empty")
                }
                blocks.append(PEMBlock(label: label, der: der))
                open = nil
            } else if open != nil {
                if line.contains(":") { continue } // RFC 1421 headers (Proc-Type, DEK-Info)
                open?.body.append(contentsOf: line.utf8)
            }
        }
        if let open {
            throw PEMError(line: open.line, reason: "the \(open.label) block has no END line")
        }
        return blocks
    }

    static func encode(label: String, der: [UInt8]) -> String {
        let base64 = Base64.encode(der)
        var lines: [Substring] = []
        var index = base64.startIndex
        while index < base64.endIndex {
            let end = base64.index(index, offsetBy: 64, limitedBy: base64.endIndex) ?? base64.endIndex
            lines.append(base64[index..<end])
            index = end
        }
        return "-----BEGIN \(label)-----\n" + lines.joined(separator: "\n") + "\n-----END \(label)-----\n"
    }
}

private extension Substring {
    func trimmingWhitespace() -> Substring {
        var result = self
        while let first = result.first, first.isWhitespace { result = result.dropFirst() }
        while let last = result.last, last.isWhitespace { result = result.dropLast() }
        return result
    }

    /// The label of a `-----BEGIN X-----` or `-----END X-----` line.
    func boundaryLabel(kind: String) -> String? {
        let prefix = "-----\(kind) "
        guard hasPrefix(prefix), hasSuffix("-----"), count >= prefix.count + 5 else { return nil }
        let label = dropFirst(prefix.count).dropLast(5)
        guard !label.isEmpty, label.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == " " || $0 == "-") }) else { return nil }
        return String(label)
    }
}

/// Standard base64 (RFC 4648 §4) with padding.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            for shift in [18, 12, 6, 0] { output.append(alphabet[Int((chunk >> UInt32(shift)) & 63)]) }
            index += 3
        }
        let remaining = bytes.count - index
        if remaining > 0 {
            var chunk = UInt32(bytes[index]) << 16
            if remaining == 2 { chunk |= UInt32(bytes[index + 1]) << 8 }
            output.append(alphabet[Int((chunk >> 18) & 63)])
            output.append(alphabet[Int((chunk >> 12) & 63)])
            output.append(remaining == 2 ? alphabet[Int((chunk >> 6) & 63)] : UInt8(ascii: "="))
            output.append(UInt8(ascii: "="))
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes base64, ignoring nothing: returns nil on any character outside
    /// the alphabet, on bad padding, or on a length that is not a multiple of 4.
    static func decode(_ text: [UInt8]) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(text.count / 4 * 3)
        var index = 0
        while index < text.count {
            let isLast = index + 4 == text.count
            var values: [UInt8] = []
            var padding = 0
            for offset in 0..<4 {
                let byte = text[index + offset]
                if byte == UInt8(ascii: "=") {
                    guard isLast, offset >= 2 else { return nil }
                    padding += 1
                    values.append(0)
                } else {
                    guard padding == 0 else { return nil }
                    let value = reverse[Int(byte)]
                    guard value != 0xFF else { return nil }
                    values.append(value)
                }
            }
            let chunk = UInt32(values[0]) << 18 | UInt32(values[1]) << 12 | UInt32(values[2]) << 6 | UInt32(values[3])
            output.append(UInt8((chunk >> 16) & 0xFF))
            if padding < 2 { output.append(UInt8((chunk >> 8) & 0xFF)) }
            if padding < 1 { output.append(UInt8(chunk & 0xFF)) }
            index += 4
        }
        return output
    }
}
