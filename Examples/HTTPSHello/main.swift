// HTTPSHello: the seed scenario of an SSL application. An HTTPS server gets a
// request, decides that it needs the client's certificate, asks for it in the
// middle of the connection, awaits it, and answers with what it learned.
//
//   swift run HTTPSHello PORT SERVER-CERT.pem SERVER-KEY.pem CLIENT-CA.pem
//   curl --cacert ca.pem https://localhost:PORT/                      # hello
//   swift run MutualTLSClient localhost PORT ca.pem client.pem client.key /private
//
// `/private` asks for a certificate: TLS 1.2 renegotiates, TLS 1.3 uses
// post-handshake authentication. Clients without one get 403.
import AsyncNSS
#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count == 4, let port = Int(arguments[0]) else {
    print("usage: HTTPSHello PORT SERVER-CERT.pem SERVER-KEY.pem CLIENT-CA.pem")
    exit(64)
}
var configuration = TLSConfiguration.makeServerConfiguration(
    identity: try await TLSIdentity.pem(certificateChainFile: arguments[1], privateKeyFile: arguments[2])
)
configuration.trust = try await TLSTrust.pem(file: arguments[3])   // verifies client certificates
let listener = try await TLSListener.bind(port: port, configuration: configuration)
print("HTTPSHello on \(listener.localAddress)")

await withDiscardingTaskGroup { group in
    do {
        for try await connection in listener {
            // The handler runs on the connection's poll loop: no thread crossing per read.
            group.addTask(executorPreference: connection.executor) {
                try? await connection.executeThenClose { connection in
                    guard let path = try await readRequestPath(connection) else { return }
                    try await connection.write(Array(try await respond(to: path, on: connection).utf8))
                }
            }
        }
    } catch {
        print("listener stopped: \(error)")
    }
}

/// Reads a request head and returns the path of its request line.
func readRequestPath(_ connection: TLSConnection) async throws -> String? {
    var head: [UInt8] = []
    while !String(decoding: head, as: UTF8.self).contains("\r\n\r\n") {
        guard let chunk = try await connection.receive(), head.count < 16_384 else { return nil }
        head += chunk
    }
    let requestLine = String(decoding: head, as: UTF8.self).split(separator: "\r\n").first ?? ""
    let parts = requestLine.split(separator: " ")
    return parts.count >= 2 ? String(parts[1]) : nil
}

/// The response for `path`: `/private` needs a client certificate.
func respond(to path: String, on connection: TLSConnection) async throws -> String {
    guard path == "/private" else { return response(200, "hello over \(connection.info.protocolVersion)\n") }
    if let subject = connection.info.peerSubject {
        return response(200, "hello, \(subject)\n")
    }
    do {
        let chain = try await connection.requestClientCertificate()
        return response(200, "hello, \(chain[0].subject)\n")
    } catch let error as TLSError where error.kind == .peerCertificateMissing || error.kind == .notOfferedByPeer {
        return response(403, "a client certificate is needed\n")
    }
}

func response(_ status: Int, _ body: String) -> String {
    "HTTP/1.1 \(status) \(status == 200 ? "OK" : "Forbidden")\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
}
