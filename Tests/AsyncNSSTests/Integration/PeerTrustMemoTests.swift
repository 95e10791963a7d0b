@testable import AsyncNSS
import CNSS
import Foundation
import Testing

extension Integration {
    /// ``PeerTrustMemo``: a verified peer certificate held in memory gets a
    /// neutral trust record, so that NSS stops searching every token for one
    /// on each handshake that presents it again, and gains no trust by it.
    @Suite("Peer certificates held in memory: a neutral trust record, no trust gained", .enabled(if: ExternalTool.isInstalled("openssl")))
    struct PeerTrustMemoTests {
        @Test("after a verified handshake the peer's certificate carries only SEND_WARN, and other trust still refuses it")
        func neutralRecord() async throws {
            try await withTimeout(seconds: 60) {
                // A certificate made just now, served by another process: no
                // database, module or identity of this process knows it.
                let dir = try TemporaryDirectory()
                try await SelfSignedFiles.make(certificate: dir.file("cert.pem"), key: dir.file("key.pem"), subject: "/CN=memo.test", altName: "IP:127.0.0.1")
                let certificateText = try String(contentsOfFile: dir.file("cert.pem"), encoding: .utf8)
                let der = try #require(try TrustAnchors.parse(certificateText, source: "the test").first).derBytes
                let serve = try await ServeProcess.start(["--cert", dir.file("cert.pem"), "--key", dir.file("key.pem")])

                // Pinned: verified, and held open so NSS keeps the certificate.
                let pinned = TLSConfiguration.makeClientConfiguration(trust: try .pem(certificateText))
                let first = try await TLSConnection.connect(host: "127.0.0.1", port: serve.port, configuration: pinned)
                #expect(InMemoryTrust.sslFlags(of: der) == UInt32(CERTDB_SEND_WARN))

                // The record trusts nothing: system roots and another anchor refuse.
                for client in [TLSConfiguration.makeClientConfiguration(), .makeClientConfiguration(trust: try await Self.otherAnchor(dir))] {
                    do {
                        let connection = try await TLSConnection.connect(host: "127.0.0.1", port: serve.port, configuration: client)
                        await connection.close()
                        Issue.record("a client without this certificate as its anchor accepted it (\(client.trust))")
                    } catch let error as TLSError {
                        #expect(["SEC_ERROR_UNKNOWN_ISSUER", "SEC_ERROR_CA_CERT_INVALID", "SEC_ERROR_UNTRUSTED_ISSUER"].contains(error.nssName), "\(error)")
                    }
                }

                // Presented again, the certificate is still verified and accepted.
                let second = try await TLSConnection.connect(host: "127.0.0.1", port: serve.port, configuration: pinned)
                #expect(second.info.peerSubject?.contains("CN=memo.test") == true)
                await second.close()
                await first.close()
                #expect(await serve.process.stop() == 0, "\(serve.process.transcript)")
            }
        }

        /// Trust in one more self-signed certificate, unrelated to the server's.
        private static func otherAnchor(_ dir: TemporaryDirectory) async throws -> TLSTrust {
            try await SelfSignedFiles.make(certificate: dir.file("other.pem"), key: dir.file("other-key.pem"), subject: "/CN=other.test")
            return try await TLSTrust.pem(file: dir.file("other.pem"))
        }
    }
}

/// The trust record NSS holds in memory for a certificate.
enum InMemoryTrust {
    /// The SSL trust flags of the certificate with this DER, if NSS holds it
    /// and it has a record.
    static func sslFlags(of der: [UInt8]) -> UInt32? {
        var bytes = der
        return bytes.withUnsafeMutableBufferPointer { buffer -> UInt32? in
            var item = SECItem(type: siBuffer, data: buffer.baseAddress, len: UInt32(buffer.count))
            guard let certificate = CERT_FindCertByDERCert(CERT_GetDefaultCertDB(), &item) else { return nil }
            defer { CERT_DestroyCertificate(certificate) }
            var trust = CERTCertTrust()
            guard CERT_GetCertTrust(certificate, &trust) == SECSuccess else { return nil }
            return trust.sslFlags
        }
    }
}
