import AsyncNSS

/// The paths `serve` gives a meaning to; every other path gets the page that
/// describes the connection.
///
/// - `/private` needs a client certificate: if the client has not presented
///   one, the server asks for it now (TLS 1.2 renegotiation, TLS 1.3
///   post-handshake authentication) and answers `200` with its subject, or
///   `403` if none came.
/// - `/health` answers `200 ok`, or `503 draining` once the server has been
///   told to stop and waits out `--drain-delay` (see ``Draining``).
/// - `/rekey` renews the keys: a KeyUpdate that asks the client for one too
///   (TLS 1.3), or a renegotiation (TLS 1.2). It answers with the event, or
///   `409` saying why the client could not take part (it refused, or it has
///   already half-closed).
enum ServeRoutes {
    static func response(to head: HTTPRequestHead, on connection: TLSConnection, draining: Draining) async throws -> HTTPResponse {
        switch path(of: head.target) {
        case "/health":
            return draining.isOn
                ? HTTPResponse(status: 503, reason: "Service Unavailable", body: "draining\n", keepAlive: false)
                : HTTPResponse(status: 200, reason: "OK", body: "ok\n", keepAlive: head.keepAlive)
        case "/private":
            return try await privatePage(connection, keepAlive: head.keepAlive)
        case "/rekey":
            return try await rekeyPage(connection, keepAlive: head.keepAlive)
        default:
            return HTTPResponse(status: 200, reason: "OK", body: ConnectionReport.serverBody(connection.info, peer: connection.remoteAddress, earlyBytes: connection.earlyDataByteCount), keepAlive: head.keepAlive)
        }
    }

    /// The target without its query.
    static func path(of target: String) -> Substring {
        target[..<(target.firstIndex(of: "?") ?? target.endIndex)]
    }

    private static func privatePage(_ connection: TLSConnection, keepAlive: Bool) async throws -> HTTPResponse {
        if let subject = connection.info.peerSubject {
            return HTTPResponse(status: 200, reason: "OK", body: "subject: \(subject)\n" + ConnectionReport.serverBody(connection.info, peer: connection.remoteAddress, earlyBytes: connection.earlyDataByteCount), keepAlive: keepAlive)
        }
        do {
            let chain = try await connection.requestClientCertificate()
            let subject = chain.first?.subject ?? ""
            return HTTPResponse(status: 200, reason: "OK", body: "subject: \(subject)\n" + ConnectionReport.serverBody(connection.info, peer: connection.remoteAddress, earlyBytes: connection.earlyDataByteCount), keepAlive: keepAlive)
        } catch let error as TLSError where [.peerCertificateMissing, .notOfferedByPeer, .renegotiationRefused].contains(error.kind) {
            return HTTPResponse(status: 403, reason: "Forbidden", body: "a client certificate is needed: \(error.message)\n", keepAlive: keepAlive && error.kind != .renegotiationRefused)
        }
    }

    private static func rekeyPage(_ connection: TLSConnection, keepAlive: Bool) async throws -> HTTPResponse {
        do {
            let event = connection.info.protocolVersion >= .tls13
                ? try await connection.updateKeys(requestPeerUpdate: true)
                : try await connection.rehandshake()
            let body = "event: \(event.kind) #\(event.sequenceNumber)\n" + ConnectionReport.serverBody(event.info, peer: connection.remoteAddress)
            return HTTPResponse(status: 200, reason: "OK", body: body, keepAlive: keepAlive)
        } catch let error as TLSError where error.kind == .renegotiationRefused {
            // A client that half-closed, or one that refuses renegotiation:
            // the connection can still carry the answer.
            return HTTPResponse(status: 409, reason: "Conflict", body: "the keys were not renewed: \(error.message)\n", keepAlive: false)
        }
    }
}
