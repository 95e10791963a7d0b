/// The parts of an ECHConfigList (RFC 9849 §4, version 0xfe0d) that AsyncNSS
/// reads itself: the first configuration's id and public name. NSS parses and
/// checks the whole list when it is set on a socket.
struct ECHConfigList: Sendable, Hashable {
    let bytes: [UInt8]
    let configID: UInt8
    let publicName: String

    /// Parses the first configuration of `bytes`; nil when it is not a list
    /// of version 0xfe0d configurations.
    init?(_ bytes: [UInt8]) {
        var reader = ByteReader(bytes[...])
        guard let listLength = reader.uint16(), listLength == reader.remaining, listLength > 0,
              let version = reader.uint16(), version == 0xfe0d,
              let length = reader.uint16(), var contents = reader.take(Int(length)).map(ByteReader.init),
              let configID = contents.uint8(),
              contents.uint16() != nil, // kem_id
              let keyLength = contents.uint16(), contents.take(Int(keyLength)) != nil,
              let suitesLength = contents.uint16(), contents.take(Int(suitesLength)) != nil,
              contents.uint8() != nil, // maximum_name_length
              let nameLength = contents.uint8(), nameLength > 0, let name = contents.take(Int(nameLength)) else { return nil }
        self.bytes = bytes
        self.configID = configID
        self.publicName = String(decoding: name, as: UTF8.self)
    }

    /// Big-endian fields, bounds-checked.
    private struct ByteReader {
        var rest: ArraySlice<UInt8>
        init(_ rest: ArraySlice<UInt8>) { self.rest = rest }
        var remaining: Int { rest.count }

        mutating func uint8() -> UInt8? {
            guard let byte = rest.first else { return nil }
            rest = rest.dropFirst()
            return byte
        }

        mutating func uint16() -> UInt16? {
            guard let high = uint8(), let low = uint8() else { return nil }
            return UInt16(high) << 8 | UInt16(low)
        }

        mutating func take(_ count: Int) -> ArraySlice<UInt8>? {
            guard count <= rest.count else { return nil }
            defer { rest = rest.dropFirst(count) }
            return rest.prefix(count)
        }
    }
}
