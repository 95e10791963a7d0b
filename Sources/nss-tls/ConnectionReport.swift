import AsyncNSS

/// The negotiated parameters of a connection as `name: value` lines.
enum ConnectionReport {
    /// What `connect` prints after its handshake.
    static func clientLines(_ info: TLSConnectionInfo) -> [String] {
        [
            "version: \(info.protocolVersion)",
            "cipher: \(info.cipherSuite)",
            "alpn: \(info.applicationProtocol ?? "none")",
            "resumed: \(info.resumed ? "yes" : "no")",
            "server-name: \(nonEmpty(info.serverName) ?? "none")",
            "peer-subject: \(nonEmpty(info.peerSubject) ?? "none")",
            "ocsp-staple: \(info.stapledOCSPResponse.map { "\($0)" } ?? "none")",
            "ech: \(info.encryptedClientHelloAccepted ? "accepted" : "no")",
        ]
    }

    /// What `serve` tells an HTTP client in the body of its `200 OK` page,
    /// one `name: value` per line: its address as the server sees it (behind
    /// a proxy, the one its PROXY header gave), version, cipher, ALPN,
    /// resumption, SNI, ECH, early data and the client certificate's subject.
    /// Written into one string: `serve` makes one for every request.
    static func serverBody(_ info: TLSConnectionInfo, peer: String, earlyBytes: Int = 0) -> String {
        var body = ""
        body.reserveCapacity(256 + peer.utf8.count + info.cipherSuite.utf8.count)
        func line(_ label: String, _ value: String) {
            body += label
            body += ": "
            body += value
            body += "\n"
        }
        line("peer", peer)
        line("version", info.protocolVersion.description)
        line("cipher", info.cipherSuite)
        line("alpn", info.applicationProtocol ?? "none")
        line("resumed", info.resumed ? "yes" : "no")
        line("sni", nonEmpty(info.serverName) ?? "none")
        line("ech", info.encryptedClientHelloAccepted ? "accepted" : "no")
        line("early-data", info.earlyDataAccepted ? "\(earlyBytes) bytes" : "no")
        line("client-certificate", nonEmpty(info.peerSubject) ?? "none")
        return body
    }

    private static func nonEmpty(_ text: String?) -> String? {
        guard let text, !text.isEmpty else { return nil }
        return text
    }
}
