// libFuzzer target for the PEM reader (Sources/AsyncNSS/Configuration/PEM.swift,
// linked into this target), which reads every certificate, key and trust file.
//
// The input is the text of a PEM file. Besides "never traps", it checks that
// every block read back survives a round trip through the writer, and that
// base64 decoding and encoding agree. A broken property traps.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPEM(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    checkDocument(String(decoding: bytes, as: UTF8.self))
    checkBase64(bytes)
    return 0
}

func checkDocument(_ text: String) {
    guard let blocks = try? PEM.parse(text) else { return }
    for block in blocks {
        precondition(!block.label.isEmpty, "a block without a label")
        precondition(!block.der.isEmpty, "an empty block was accepted")
        let written = PEM.encode(label: block.label, der: block.der)
        guard let again = try? PEM.parse(written) else {
            preconditionFailure("a block does not parse again once written out")
        }
        precondition(again == [block], "a block changes when written out and parsed again")
    }
}

func checkBase64(_ bytes: [UInt8]) {
    let encoded = Base64.encode(bytes)
    precondition(Base64.decode(Array(encoded.utf8)) == bytes, "base64 does not round-trip")
    if let decoded = Base64.decode(bytes) {
        precondition(Base64.encode(decoded).utf8.count == bytes.count, "decoded base64 re-encodes to another length")
        precondition(Base64.decode(Array(Base64.encode(decoded).utf8)) == decoded, "decoded base64 does not round-trip")
    }
}
