/// Adds query attributes to a PKCS#11 URI (RFC 7512), so that
/// `--pkcs11-pin-file` reaches the library as `pin-source`, the way a URI
/// written by hand would carry it.
enum PKCS11URIQuery {
    static func adding(_ name: String, _ value: String, to uri: String) -> String {
        let separator = uri.contains("?") ? "&" : "?"
        return uri + separator + name + "=" + percentEncoded(value)
    }

    /// RFC 3986 unreserved characters and `/` stay; everything else is %XX.
    static func percentEncoded(_ value: String) -> String {
        var result = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                result += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return result
    }
}
