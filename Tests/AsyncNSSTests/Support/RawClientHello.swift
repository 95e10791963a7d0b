/// A hand-made TLS 1.2 (or older) ClientHello, for offering what no installed
/// client offers any more (export suites, single DES) and for leaving out what
/// every client sends (the renegotiation_info extension of RFC 5746).
///
/// It is well formed: with a suite the server accepts, the server answers
/// with a ServerHello, which the security tests check as their control.
struct RawClientHello {
    /// `legacy_version` in the hello: 0x0303 for TLS 1.2, 0x0302 for TLS 1.1.
    var version: UInt16 = 0x0303
    var cipherSuites: [UInt16]
    /// Sends the empty renegotiation_info extension (a first handshake).
    var renegotiationInfo = true
    var serverName = "localhost"

    /// The record that carries the hello.
    var bytes: [UInt8] {
        var body: [UInt8] = []
        body += Self.u16(version)
        body += (0..<32).map { _ in UInt8.random(in: 0...255) }     // random
        body.append(0)                                               // no session ID
        body += Self.u16(UInt16(cipherSuites.count * 2))
        for suite in cipherSuites { body += Self.u16(suite) }
        body += [1, 0]                                               // compression: null only
        let extensions = self.extensions
        body += Self.u16(UInt16(extensions.count)) + extensions

        let handshake: [UInt8] = [1] + Self.u24(body.count) + body   // client_hello
        return [22, 0x03, 0x01] + Self.u16(UInt16(handshake.count)) + handshake
    }

    private var extensions: [UInt8] {
        var result: [UInt8] = []
        let name = Array(serverName.utf8)
        let nameEntry: [UInt8] = [0] + Self.u16(UInt16(name.count)) + name
        result += Self.extensionBytes(0x0000, Self.u16(UInt16(nameEntry.count)) + nameEntry)
        // supported_groups: x25519, secp256r1, secp384r1.
        result += Self.extensionBytes(0x000A, Self.u16(6) + Self.u16(0x001D) + Self.u16(0x0017) + Self.u16(0x0018))
        result += Self.extensionBytes(0x000B, [1, 0])                 // ec_point_formats: uncompressed
        // signature_algorithms: ECDSA P-256, RSA-PSS and PKCS#1 with SHA-256/384/512.
        let schemes: [UInt16] = [0x0403, 0x0503, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601]
        result += Self.extensionBytes(0x000D, Self.u16(UInt16(schemes.count * 2)) + schemes.flatMap(Self.u16))
        result += Self.extensionBytes(0x0017, [])                     // extended_master_secret
        if renegotiationInfo {
            result += Self.extensionBytes(0xFF01, [0])                // renegotiation_info, empty
        }
        return result
    }

    private static func extensionBytes(_ type: UInt16, _ data: [UInt8]) -> [UInt8] {
        u16(type) + u16(UInt16(data.count)) + data
    }

    private static func u16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }

    private static func u24(_ value: Int) -> [UInt8] { [UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)] }
}

/// The first record a server sends back, as far as the tests care.
enum FirstRecord: Equatable, CustomStringConvertible {
    /// A handshake record whose first message is a ServerHello.
    case serverHello
    /// An alert, with its description (40 handshake_failure, 70 protocol_version, ...).
    case alert(description: UInt8)
    /// Anything else, or nothing: the bytes that arrived.
    case other([UInt8])

    var description: String {
        switch self {
        case .serverHello: "ServerHello"
        case .alert(let code): "alert \(code)"
        case .other(let bytes): "other \(bytes.prefix(16))"
        }
    }

    /// Sends `hello` to 127.0.0.1:`port` and reads what comes back first.
    static func answer(to hello: RawClientHello, port: Int) async throws -> FirstRecord {
        let bytes = hello.bytes
        let answer = try await onOwnThread {
            let peer = try RawTCP(port: port)
            peer.send(bytes)
            let received = peer.readAll(limit: 5 + 16)
            peer.close()
            return received
        }
        return FirstRecord(answer)
    }

    init(_ bytes: [UInt8]) {
        if bytes.count >= 6, bytes[0] == 22, bytes[5] == 2 {
            self = .serverHello
        } else if bytes.count >= 7, bytes[0] == 21 {
            self = .alert(description: bytes[6])
        } else {
            self = .other(bytes)
        }
    }
}
