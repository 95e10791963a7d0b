// libFuzzer target for the PROXY protocol header parser
// (Sources/AsyncNSS/Listener/ProxyProtocolHeader.swift, linked into this
// target). The input is the first bytes of a connection to a listener that
// requires the header. Besides "never traps", it checks properties that must
// hold for every input, and traps when one does not.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProxyHeader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let verdict = ProxyProtocolHeader.parse(bytes)
    checkPrefixes(bytes, verdict)
    if case .complete(let header, let length) = verdict {
        check(header, length: length, in: bytes)
    }
    return 0
}

/// Reading more never changes a decided verdict, and a verdict is reached
/// within the maximum length: the listener never waits for more than it may read.
func checkPrefixes(_ bytes: [UInt8], _ verdict: ProxyProtocolHeader.Parse) {
    if verdict == .needMore {
        precondition(bytes.count < ProxyProtocolHeader.maximumLength, "needs more after \(bytes.count) bytes")
        return
    }
    precondition(ProxyProtocolHeader.parse(bytes + [0x0D, 0x0A, 0x00]) == verdict, "a decided verdict changed when bytes were added")
}

/// What a parsed header must satisfy.
func check(_ header: ProxyProtocolHeader, length: Int, in bytes: [UInt8]) {
    precondition(length > 0 && length <= bytes.count && length <= ProxyProtocolHeader.maximumLength, "length \(length) out of range")
    // The header alone parses to the same header: nothing after it was read.
    precondition(ProxyProtocolHeader.parse(Array(bytes.prefix(length))) == .complete(header, length: length), "the header depends on the bytes after it")
    // Every shorter prefix of it asks for more.
    for count in [0, length / 2, length - 1] where count < length {
        precondition(ProxyProtocolHeader.parse(Array(bytes.prefix(count))) == .needMore, "a prefix of \(count) bytes of a header was decided")
    }
    for endpoint in [header.source, header.destination].compactMap({ $0 }) {
        precondition(!endpoint.host.isEmpty, "an empty address")
        let text = endpoint.description
        precondition(text.hasSuffix(":\(endpoint.port)"), "the description \(text) does not end with the port")
    }
    if header.version == .v1 {
        precondition(header.fields.isEmpty, "a v1 header with TLVs")
        precondition(bytes[length - 2] == 0x0D && bytes[length - 1] == 0x0A, "a v1 header that does not end with CRLF")
    }
    if let uniqueID = header.uniqueID { precondition(uniqueID.count <= 128, "a unique ID of \(uniqueID.count) bytes") }
}
