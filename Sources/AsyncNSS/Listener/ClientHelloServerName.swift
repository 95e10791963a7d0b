/// Finds the SNI name in the first bytes a TLS client sends, before NSS sees
/// them, so that a server can present the identity for that name from the
/// start of the handshake (see ``ServerNamePreselection``).
///
/// It reads only as far as the `server_name` extension and checks no more
/// than it needs: NSS parses the same bytes afterwards and reports whatever
/// is wrong with them.
enum ClientHelloServerName {
    enum Parse: Equatable {
        /// The whole ClientHello is here; the name it asks for, if any.
        case complete(serverName: String?)
        /// The whole ClientHello is here, and it carries an encrypted one
        /// (Encrypted Client Hello): its name is only the public name, and
        /// the name the client asks for is inside, for NSS to decrypt.
        case encrypted(outerServerName: String?)
        /// The bytes so far are the start of a ClientHello.
        case needMore
        /// Not a ClientHello that this parser can read; NSS will judge it.
        case unreadable
    }

    /// The largest ClientHello read ahead for its name. A ClientHello with
    /// post-quantum key shares is under 2 KiB; TLS allows up to 16 MiB,
    /// which nothing sends.
    static let maximumLength = 32 * 1024

    static func parse(_ bytes: [UInt8]) -> Parse {
        var message: [UInt8] = []
        var offset = 0
        while bytes.count > offset {
            // A record: content type 22 (handshake), version, length.
            guard bytes[offset] == 22 else { return .unreadable }
            guard bytes.count >= offset + 5 else { return .needMore }
            let length = Int(bytes[offset + 3]) << 8 | Int(bytes[offset + 4])
            guard length > 0, length <= 16_384 else { return .unreadable }
            guard bytes.count >= offset + 5 + length else { return .needMore }
            message += bytes[(offset + 5)..<(offset + 5 + length)]
            offset += 5 + length
            // The handshake message: type 1 (client_hello), 24-bit length.
            guard message[0] == 1 else { return .unreadable }
            guard message.count >= 4 else { continue }
            let bodyLength = Int(message[1]) << 16 | Int(message[2]) << 8 | Int(message[3])
            guard bodyLength <= maximumLength else { return .unreadable }
            if message.count >= 4 + bodyLength {
                var body = Cursor(message[4..<(4 + bodyLength)])
                let (name, encrypted) = serverName(in: &body)
                return encrypted ? .encrypted(outerServerName: name) : .complete(serverName: name)
            }
        }
        return .needMore
    }

    /// The first host_name of the server_name extension (nil if there is
    /// none, or if the body ends early: NSS then refuses it), and whether an
    /// encrypted_client_hello extension (0xfe0d) came too.
    private static func serverName(in body: inout Cursor) -> (String?, encrypted: Bool) {
        guard body.skip(2 + 32),                      // legacy_version, random
              body.skipVector(lengthBytes: 1),        // legacy_session_id
              body.skipVector(lengthBytes: 2),        // cipher_suites
              body.skipVector(lengthBytes: 1),        // legacy_compression_methods
              var extensions = body.vector(lengthBytes: 2) else { return (nil, false) }
        var name: String?
        var encrypted = false
        while let type = extensions.integer(bytes: 2), var data = extensions.vector(lengthBytes: 2) {
            if type == 0xfe0d { encrypted = true }
            guard type == 0, name == nil else { continue }
            guard var names = data.vector(lengthBytes: 2) else { return (nil, encrypted) }
            while let nameType = names.integer(bytes: 1), let value = names.vector(lengthBytes: 2) {
                if nameType == 0, !value.isEmpty, value.count <= 255 {
                    name = String(decoding: value.remaining, as: UTF8.self)
                    break
                }
            }
        }
        return (name, encrypted)
    }

    /// Reads big-endian integers and length-prefixed vectors; every read
    /// fails (returns nil or false) instead of going past the end.
    private struct Cursor {
        private(set) var remaining: ArraySlice<UInt8>

        init(_ bytes: ArraySlice<UInt8>) { remaining = bytes }

        var isEmpty: Bool { remaining.isEmpty }
        var count: Int { remaining.count }

        mutating func skip(_ count: Int) -> Bool {
            guard remaining.count >= count else { return false }
            remaining = remaining.dropFirst(count)
            return true
        }

        mutating func integer(bytes: Int) -> Int? {
            guard remaining.count >= bytes else { return nil }
            let value = remaining.prefix(bytes).reduce(0) { $0 << 8 | Int($1) }
            remaining = remaining.dropFirst(bytes)
            return value
        }

        mutating func vector(lengthBytes: Int) -> Cursor? {
            guard let length = integer(bytes: lengthBytes), remaining.count >= length else { return nil }
            defer { remaining = remaining.dropFirst(length) }
            return Cursor(remaining.prefix(length))
        }

        mutating func skipVector(lengthBytes: Int) -> Bool {
            vector(lengthBytes: lengthBytes) != nil
        }
    }
}
