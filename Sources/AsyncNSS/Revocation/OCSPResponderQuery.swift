internal import CNSS

/// Asks the OCSP responder that a certificate names (its Authority
/// Information Access) for the certificate's status: an HTTP/1.0 POST of an
/// NSS-encoded request, on a blocking NSPR socket on the blocking pool, with a
/// deadline. The answer is checked like a stapled one (``OCSPResponseCheck``),
/// so a CA trusted only as a ``TLSTrust/certificates(_:)`` anchor signs
/// answers that count; NSS's own fetch would refuse them.
enum OCSPResponderQuery {
    /// The largest answer read: real responses are a few kilobytes.
    static let answerLimit = 64 * 1024

    /// The responder's verdict on `certificate`: good, or the NSS code and
    /// a note for the error that refuses it.
    static func status(of certificate: CertificateObject, timeout: Duration, services: RuntimeServices) async -> (PRErrorCode, String)? {
        do {
            let (url, request) = try await services.blockingPool.run {
                try certificate.withPointer("asking the OCSP responder") { try encodedRequest(for: $0) }
            }
            guard let target = HTTPTarget(url) else {
                return (PRErrorCode(SEC_ERROR_OCSP_SERVER_ERROR.rawValue), "The certificate's OCSP responder \(url) is not an http:// URL.")
            }
            let addresses = try await NetworkAddress.resolve(target.host, port: target.port, services: services)
            let answer = try await services.blockingPool.run {
                try post(request, to: target, at: addresses[0], timeout: timeout)
            }
            let status = try await services.blockingPool.run {
                try certificate.withPointer("checking the OCSP responder's answer") { OCSPResponseCheck.status(of: $0, in: answer) }
            }
            // The responder's answer, judged as a staple is.
            return status.refusal(by: "The answer of the OCSP responder at \(url)")
        } catch {
            let code = (error as? TLSError)?.nssCode ?? PRErrorCode(SEC_ERROR_OCSP_SERVER_ERROR.rawValue)
            return (code, "RevocationPolicy.ocsp: no answer from the certificate's OCSP responder: \(error)")
        }
    }

    private static func encodedRequest(for certificate: UnsafeMutablePointer<CERTCertificate>) throws -> (String, [UInt8]) {
        let operation = "making an OCSP request"
        guard let location = CERT_GetOCSPAuthorityInfoAccessLocation(certificate) else {
            throw TLSError(kind: .nss, operation: operation, nssCode: PRErrorCode(SEC_ERROR_OCSP_NO_DEFAULT_RESPONDER.rawValue), nssName: "SEC_ERROR_OCSP_NO_DEFAULT_RESPONDER",
                           message: "the certificate names no OCSP responder (no Authority Information Access)")
        }
        let url = String(cString: location)
        PORT_Free(location)
        guard let list = CERT_NewCertList() else { throw TLSError.fromLastNSSError(operation) }
        defer { CERT_DestroyCertList(list) }
        guard let copy = CERT_DupCertificate(certificate) else { throw TLSError.fromLastNSSError(operation) }
        guard CERT_AddCertToListTail(list, copy) == SECSuccess else {
            CERT_DestroyCertificate(copy)
            throw TLSError.fromLastNSSError(operation)
        }
        guard let request = CERT_CreateOCSPRequest(list, PR_Now(), PR_FALSE, nil) else { throw TLSError.fromLastNSSError(operation) }
        defer { CERT_DestroyOCSPRequest(request) }
        guard let arena = PORT_NewArena(2048) else { throw TLSError.fromLastNSSError(operation) }
        defer { PORT_FreeArena(arena, PR_FALSE) }
        guard let encoded = CERT_EncodeOCSPRequest(arena, request, nil) else { throw TLSError.fromLastNSSError(operation) }
        return (url, encoded.pointee.bytes)
    }

    /// Sends `request` and returns the answer's body. Blocks: blocking pool only.
    private static func post(_ request: [UInt8], to target: HTTPTarget, at address: NetworkAddress, timeout: Duration) throws -> [UInt8] {
        let operation = "asking the OCSP responder \(target.host):\(target.port)"
        var address = address.raw
        let fd = try TCPSocketOptions.openSocket(family: Int32(address.raw.family), operation)
        defer { PR_Close(fd) }
        let interval = PR_MillisecondsToInterval(UInt32(clamping: timeout.components.seconds * 1000 + 1))
        guard PR_Connect(fd, &address, interval) == PR_SUCCESS else { throw TLSError.fromLastNSSError(operation) }
        let head = "POST \(target.path) HTTP/1.0\r\nHost: \(target.host)\r\nContent-Type: application/ocsp-request\r\nContent-Length: \(request.count)\r\nConnection: close\r\n\r\n"
        var message = Array(head.utf8) + request
        var sent = 0
        while sent < message.count {
            let count = message.withUnsafeMutableBytes { bytes -> Int32 in
                guard let base = bytes.baseAddress else { return -1 }
                return PR_Send(fd, base + sent, Int32(bytes.count - sent), 0, interval)
            }
            guard count > 0 else { throw TLSError.fromLastNSSError(operation) }
            sent += Int(count)
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while answer.count <= answerLimit {
            let count = chunk.withUnsafeMutableBytes { PR_Recv(fd, $0.baseAddress, Int32($0.count), 0, interval) }
            if count == 0 { break }
            guard count > 0 else { throw TLSError.fromLastNSSError(operation) }
            answer += chunk[0..<Int(count)]
            // A responder may keep the connection open (openssl ocsp does):
            // the answer is complete once Content-Length bytes of body arrived.
            if HTTPTarget.isComplete(answer) { break }
        }
        guard let body = HTTPTarget.body(ofOKResponse: answer) else {
            throw TLSError(kind: .nss, operation: operation, nssCode: PRErrorCode(SEC_ERROR_OCSP_BAD_HTTP_RESPONSE.rawValue), nssName: "SEC_ERROR_OCSP_BAD_HTTP_RESPONSE",
                           message: "the responder's answer is not an HTTP 200 response of at most \(answerLimit) bytes")
        }
        return body
    }
}

/// An `http://host[:port]/path` URL, split.
struct HTTPTarget: Sendable {
    let host: String
    let port: UInt16
    let path: String

    init?(_ url: String) {
        guard url.lowercased().hasPrefix("http://") else { return nil }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" }
        path = rest.dropFirst(authority.count).isEmpty ? "/" : String(rest.dropFirst(authority.count))
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let tail = authority[authority.index(after: close)...]
            guard tail.isEmpty || tail.hasPrefix(":") else { return nil }
            guard let port = tail.isEmpty ? 80 : UInt16(tail.dropFirst()) else { return nil }
            self.port = port
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let port = UInt16(authority[authority.index(after: colon)...]) else { return nil }
            self.port = port
        } else {
            host = String(authority)
            port = 80
        }
        guard !host.isEmpty else { return nil }
    }

    /// The body of an HTTP response with status 200, or nil.
    static func body(ofOKResponse response: [UInt8]) -> [UInt8]? {
        guard response.count <= OCSPResponderQuery.answerLimit, let end = headEnd(response) else { return nil }
        let statusLine = String(decoding: response[..<end].prefix { $0 != 13 }, as: UTF8.self).split(separator: " ")
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), statusLine[1] == "200" else { return nil }
        let body = response[(end + 4)...]
        if let length = contentLength(response[..<end]), body.count > length { return Array(body.prefix(length)) }
        return Array(body)
    }

    /// Whether `response` holds its whole head and as much body as its
    /// Content-Length says; false without a Content-Length (read to the end).
    static func isComplete(_ response: [UInt8]) -> Bool {
        guard let end = headEnd(response), let length = contentLength(response[..<end]) else { return false }
        return response.count - (end + 4) >= length
    }

    private static func headEnd(_ response: [UInt8]) -> Int? {
        let separator: [UInt8] = [13, 10, 13, 10]
        return response.indices.dropLast(3).first { response[$0..<$0 + 4].elementsEqual(separator) }
    }

    private static func contentLength(_ head: ArraySlice<UInt8>) -> Int? {
        for line in String(decoding: head, as: UTF8.self).split(separator: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length" {
                return Int(parts[1].filter { $0 != " " && $0 != "\t" })
            }
        }
        return nil
    }
}
