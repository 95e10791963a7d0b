internal import CNSS
import Synchronization

/// Reads the negotiated parameters of an SSL socket.
enum ConnectionInfoReader {
    /// Safe to call from the handshake callback and after the handshake.
    static func read(_ fd: UnsafeMutablePointer<PRFileDesc>, isServer: Bool, requestedServerName: String?, stapledOCSPResponse: OCSPStatus? = nil) -> TLSConnectionInfo? {
        var channel = SSLChannelInfo()
        guard SSL_GetChannelInfo(fd, &channel, PRUintn(MemoryLayout<SSLChannelInfo>.size)) == SECSuccess,
              channel.length > 0 else { return nil }
        return TLSConnectionInfo(
            protocolVersion: TLSVersion(wireValue: channel.protocolVersion),
            cipherSuite: cipherSuiteName(channel.cipherSuite),
            applicationProtocol: applicationProtocol(fd),
            serverName: isServer ? (requestedServerName ?? negotiatedHostName(fd)) : requestedServerName,
            resumed: channel.resumed != PR_FALSE,
            peerCertificates: peerCertificates(fd),
            stapledOCSPResponse: channel.resumed != PR_FALSE ? nil : stapledOCSPResponse,
            encryptedClientHelloAccepted: channel.echAccepted != PR_FALSE,
            earlyDataAccepted: channel.earlyDataAccepted != PR_FALSE
        )
    }

    /// On a server that accepted early data and awaits the client's
    /// Finished: what is known already. The session is resumed, so no
    /// certificate came.
    static func readPreliminary(_ fd: UnsafeMutablePointer<PRFileDesc>, requestedServerName: String?) -> TLSConnectionInfo? {
        var info = SSLPreliminaryChannelInfo()
        guard SSL_GetPreliminaryChannelInfo(fd, &info, PRUintn(MemoryLayout<SSLPreliminaryChannelInfo>.size)) == SECSuccess,
              info.valuesSet & PRUint32(ssl_preinfo_version | ssl_preinfo_cipher_suite) == PRUint32(ssl_preinfo_version | ssl_preinfo_cipher_suite) else { return nil }
        return TLSConnectionInfo(
            protocolVersion: TLSVersion(wireValue: info.protocolVersion),
            cipherSuite: cipherSuiteName(info.cipherSuite),
            applicationProtocol: applicationProtocol(fd),
            serverName: requestedServerName ?? negotiatedHostName(fd),
            resumed: true,
            peerCertificates: [],
            stapledOCSPResponse: nil,
            encryptedClientHelloAccepted: info.echAccepted != PR_FALSE,
            earlyDataAccepted: true
        )
    }

    /// Cipher-suite names already looked up: a handful of suites are ever
    /// negotiated, and every handshake would otherwise make the same `String`.
    private static let cipherSuiteNames = Mutex<[UInt16: String]>([:])

    static func cipherSuiteName(_ suite: UInt16) -> String {
        if let name = cipherSuiteNames.withLock({ $0[suite] }) { return name }
        let name = lookUpCipherSuiteName(suite)
        cipherSuiteNames.withLock { $0[suite] = name }
        return name
    }

    private static func lookUpCipherSuiteName(_ suite: UInt16) -> String {
        var info = SSLCipherSuiteInfo()
        guard SSL_GetCipherSuiteInfo(suite, &info, PRUintn(MemoryLayout<SSLCipherSuiteInfo>.size)) == SECSuccess,
              let name = info.cipherSuiteName else {
            return "0x" + String(suite, radix: 16)
        }
        return String(cString: name)
    }

    static func applicationProtocol(_ fd: UnsafeMutablePointer<PRFileDesc>) -> String? {
        // An ALPN protocol name is at most 255 bytes: room on the stack, no array.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { buffer in
            var state = SSL_NEXT_PROTO_NO_SUPPORT
            var length: UInt32 = 0
            guard SSL_GetNextProto(fd, &state, buffer.baseAddress, &length, UInt32(buffer.count)) == SECSuccess,
                  length > 0, Int(length) <= buffer.count,
                  state == SSL_NEXT_PROTO_NEGOTIATED || state == SSL_NEXT_PROTO_SELECTED else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[0..<Int(length)]), as: UTF8.self)
        }
    }

    /// On a client whose ECH configuration the server rejected, the
    /// configuration's public name: the certificate must carry that name.
    static func rejectedEncryptedClientHelloPublicName(_ fd: UnsafeMutablePointer<PRFileDesc>) -> String? {
        var info = SSLPreliminaryChannelInfo()
        guard SSL_GetPreliminaryChannelInfo(fd, &info, PRUintn(MemoryLayout<SSLPreliminaryChannelInfo>.size)) == SECSuccess,
              info.valuesSet & PRUint32(ssl_preinfo_ech) != 0, info.echAccepted == PR_FALSE,
              let name = info.echPublicName else { return nil }
        return String(cString: name)
    }

    static func negotiatedHostName(_ fd: UnsafeMutablePointer<PRFileDesc>) -> String? {
        guard let item = SSL_GetNegotiatedHostInfo(fd) else { return nil }
        defer { SECITEM_FreeItem(item, PR_TRUE) }
        guard let data = item.pointee.data, item.pointee.len > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(item.pointee.len)), as: UTF8.self)
    }

    static func peerCertificates(_ fd: UnsafeMutablePointer<PRFileDesc>) -> [TLSCertificate] {
        var result: [TLSCertificate] = []
        forEachPeerCertificate(fd) { result.append(CertificateImport.describe($0)) }
        return result
    }

    /// Calls `body` with each certificate the peer presented, leaf first
    /// (`SSL_PeerCertificateChain`); the certificates live only during the call.
    static func forEachPeerCertificate(_ fd: UnsafeMutablePointer<PRFileDesc>, _ body: (UnsafeMutablePointer<CERTCertificate>) -> Void) {
        guard let list = SSL_PeerCertificateChain(fd) else { return }
        defer { CERT_DestroyCertList(list) }
        var node = cnss_cert_list_head(list)
        while let current = node, cnss_cert_list_end(current, list) == 0 {
            if let certificate = current.pointee.cert { body(certificate) }
            node = cnss_cert_list_next(current)
        }
    }
}
