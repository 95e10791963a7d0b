import AsyncNSS

/// The negotiated parameters of a connection as `name: value` lines.
enum ConnectionReport {
    /// What `serve` tells an HTTP client: its address as the server sees it
    /// (behind a proxy, the one its PROXY header gave), version, cipher,
    /// ALPN, resumption, SNI and the client certificate's subject.
    static func serverLines(_ info: TLSConnectionInfo, peer: String, earlyBytes: Int = 0) -> [String] {
        [
            "peer: \(peer)",
            "version: \(info.protocolVersion)",
            "cipher: \(info.cipherSuite)",
            "alpn: \(info.applicationProtocol ?? "none")",
            "resumed: \(info.resumed ? "yes" : "no")",
            "sni: \(nonEmpty(info.serverName) ?? "none")",
            "ech: \(info.encryptedClientHelloAccepted ? "accepted" : "no")",
            "early-data: \(info.earlyDataAccepted ? "\(earlyBytes) bytes" : "no")",
            "client-certificate: \(nonEmpty(info.peerSubject) ?? "none")",
        ]
    }

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

    /// The body of the `200 OK` page: the server lines, one per line.
    static func serverBody(_ info: TLSConnectionInfo, peer: String, earlyBytes: Int = 0) -> String {
        serverLines(info, peer: peer, earlyBytes: earlyBytes).map { $0 + "\n" }.joined()
    }

    private static func nonEmpty(_ text: String?) -> String? {
        guard let text, !text.isEmpty else { return nil }
        return text
    }
}
