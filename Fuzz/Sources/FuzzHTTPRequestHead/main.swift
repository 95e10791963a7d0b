// libFuzzer target for the request-head parser of `nss-tls serve`
// (Sources/nss-tls/HTTPRequestHead.swift, linked into this target).
//
// The input is what a client sends on one connection. It is fed the way
// ServeSession does: classify the first bytes, then find each head with
// `endOfHead` as the bytes arrive in chunks, parse it, skip its body, and go
// on with the next request. Besides "never traps", it checks properties that
// must hold for every input, and traps when one does not.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPRequestHead(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let stream = Array(UnsafeBufferPointer(start: data, count: size))
    checkClassification(stream)
    serve(stream)
    return 0
}

/// `classify(prefix:)` only ever moves forward: more bytes never turn a
/// verdict of `.requestLine` or `.notRequestLine` into another one.
func checkClassification(_ bytes: [UInt8]) {
    let verdict = HTTPRequestHead.classify(prefix: bytes)
    for extra: UInt8 in [0x41, 0x0D, 0x20] {
        let longer = HTTPRequestHead.classify(prefix: bytes + [extra])
        switch verdict {
        case .requestLine, .notRequestLine:
            precondition(longer == verdict, "classify changed its verdict after one more byte")
        case .needMoreBytes:
            break
        }
    }
    if verdict == .needMoreBytes, !bytes.isEmpty {
        precondition(HTTPRequestHead.classify(prefix: Array(bytes.dropLast())) == .needMoreBytes, "a prefix of an incomplete line was decided")
    }
}

/// Mirrors `ServeSession.serveHTTP`: heads one after the other, each found
/// incrementally, until one fails to parse or the bytes run out.
func serve(_ stream: [UInt8]) {
    guard HTTPRequestHead.classify(prefix: stream) == .requestLine else { return }
    let chunkSize = 1 + stream.count % 7
    var pending = stream[...]
    var buffer: [UInt8] = []
    var searchFrom = 0
    while true {
        let dropped = dropLeadingEmptyLines(&buffer)
        if dropped { searchFrom = 0 }
        if let end = HTTPRequestHead.endOfHead(in: buffer, searchingFrom: searchFrom) {
            precondition(end == HTTPRequestHead.endOfHead(in: buffer), "the incremental search found another end than a full search")
            let head = Array(buffer.prefix(end))
            buffer.removeFirst(end)
            searchFrom = 0
            guard let parsed = try? HTTPRequestHead(parsing: head) else { return }
            check(parsed, from: head)
            // Skip the body, as `InboundBuffer.discard` does.
            var remaining = parsed.contentLength
            while remaining > 0 {
                if buffer.isEmpty {
                    guard !pending.isEmpty else { return }
                    buffer += pending.prefix(chunkSize)
                    pending = pending.dropFirst(chunkSize)
                }
                let taken = min(remaining, buffer.count)
                buffer.removeFirst(taken)
                remaining -= taken
            }
            continue
        }
        guard !pending.isEmpty else { return }
        searchFrom = max(0, buffer.count - 3)
        buffer += pending.prefix(chunkSize)
        pending = pending.dropFirst(chunkSize)
    }
}

/// What a successfully parsed head must satisfy.
func check(_ head: HTTPRequestHead, from bytes: [UInt8]) {
    precondition(HTTPRequestHead.classify(prefix: bytes) == .requestLine, "a parsed head does not classify as a request line")
    precondition(HTTPRequestHead.endOfHead(in: bytes) == bytes.count, "a parsed head holds an earlier blank line")
    precondition(!head.method.isEmpty && !head.target.isEmpty, "empty method or target")
    precondition(head.version == .http10 || head.version == .http11, "a version other than 1.0 or 1.1")
    precondition(head.fields.count <= HTTPRequestHead.maximumFieldCount, "too many fields accepted")
    precondition(head.contentLength >= 0, "a negative Content-Length")
    // Written out again canonically, the head parses to the same value.
    var canonical = "\(head.method) \(head.target) \(head.version)\r\n"
    for field in head.fields { canonical += "\(field.name): \(field.value)\r\n" }
    canonical += "\r\n"
    guard let again = try? HTTPRequestHead(parsing: Array(canonical.utf8)) else {
        preconditionFailure("a parsed head does not parse again once written out")
    }
    precondition(again == head, "a parsed head changes when written out and parsed again")
}

/// Drops empty lines (CRLF) before a request, as `InboundBuffer` does.
func dropLeadingEmptyLines(_ buffer: inout [UInt8]) -> Bool {
    var count = 0
    while count + 1 < buffer.count, buffer[count] == ASCII.cr, buffer[count + 1] == ASCII.lf { count += 2 }
    buffer.removeFirst(count)
    return count > 0
}
