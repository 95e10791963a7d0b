/// Reads DER's tag-length-value elements, bounds-checked: enough to walk a
/// structure that NSS decodes but does not expose (an OCSP response's
/// signed part). Single-byte tags and definite lengths only, as DER has.
struct DERReader {
    struct Element {
        let tag: UInt8
        /// The whole element, header included.
        let encoded: ArraySlice<UInt8>
        /// The element's content.
        let content: ArraySlice<UInt8>
    }

    private var rest: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { rest = bytes }

    var isAtEnd: Bool { rest.isEmpty }

    /// The next element, or nil when the bytes end or are not valid DER.
    mutating func next() -> Element? {
        let start = rest.startIndex
        guard rest.count >= 2 else { return nil }
        let tag = rest[start]
        guard tag & 0x1f != 0x1f else { return nil }
        var index = start + 1
        let first = rest[index]
        index += 1
        var length = 0
        if first < 0x80 {
            length = Int(first)
        } else {
            let count = Int(first & 0x7f)
            guard (1...4).contains(count), rest.endIndex - index >= count else { return nil }
            for byte in rest[index..<index + count] { length = length << 8 | Int(byte) }
            index += count
        }
        guard length <= rest.endIndex - index else { return nil }
        let end = index + length
        let element = Element(tag: tag, encoded: rest[start..<end], content: rest[index..<end])
        rest = rest[end...]
        return element
    }

    /// The next element if it has `tag`, consumed; nil (and nothing consumed) otherwise.
    mutating func next(tagged tag: UInt8) -> Element? {
        var copy = self
        guard let element = copy.next(), element.tag == tag else { return nil }
        self = copy
        return element
    }
}
