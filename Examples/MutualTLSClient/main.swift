// MutualTLSClient: a client that verifies the server against a private CA and
// presents its own certificate whenever the server asks, on the first
// handshake or later (renegotiation, TLS 1.3 post-handshake authentication).
//
//   swift run MutualTLSClient HOST PORT CA.pem CLIENT-CERT.pem CLIENT-KEY.pem [PATH]
//
// It sends `GET PATH` (default `/`) and prints the response.
import AsyncNSS
#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count == 5 || arguments.count == 6, let port = Int(arguments[1]) else {
    print("usage: MutualTLSClient HOST PORT CA.pem CLIENT-CERT.pem CLIENT-KEY.pem [PATH]")
    exit(64)
}
var configuration = TLSConfiguration.makeClientConfiguration(trust: try await TLSTrust.pem(file: arguments[2]))
configuration.identity = try await TLSIdentity.pem(certificateChainFile: arguments[3], privateKeyFile: arguments[4])
let path = arguments.count == 6 ? arguments[5] : "/"

do {
    try await TLSConnection.withConnection(host: arguments[0], port: port, configuration: configuration) { connection in
        print("connected: \(connection.info.protocolVersion), server \(connection.info.peerSubject ?? "?")")
        try await connection.write(Array("GET \(path) HTTP/1.1\r\nHost: \(arguments[0])\r\nConnection: close\r\n\r\n".utf8))
        // Reading is what lets the client answer a certificate request.
        for try await chunk in connection.inbound {
            print(String(decoding: chunk, as: UTF8.self), terminator: "")
        }
    }
} catch {
    print("error: \(error)")
    exit(1)
}
