// HSMServer: an HTTPS server whose private key stays on a PKCS#11 token (an
// HSM, a smart card, or SoftHSM2 for development). NSS signs each handshake
// through the token's module; the key is never read into the process.
//
//   swift run HSMServer PORT MODULE KEY-URI CERT-CHAIN
//   swift run HSMServer 8443 /usr/lib/softhsm/libsofthsm2.so \
//       'pkcs11:token=web;object=server-key?pin-source=/run/secrets/pin' server.pem
//   curl --cacert ca.pem https://localhost:8443/
//
// The PIN comes from the URI's pin-source (a file) or pin-value. README.md
// shows how to make a SoftHSM2 token and put a key on it.
import AsyncNSS
#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count == 4, let port = Int(arguments[0]) else {
    print("usage: HSMServer PORT MODULE KEY-URI CERT-CHAIN")
    exit(64)
}
let identity = try await TLSIdentity.pkcs11(keyURI: arguments[2], modulePath: arguments[1], certificateChainFile: arguments[3])
let listener = try await TLSListener.bind(port: port, configuration: .makeServerConfiguration(identity: identity))
print("serving on \(listener.localAddress) with the key \(arguments[2].split(separator: "?")[0])")

await withDiscardingTaskGroup { group in
    do {
        for try await connection in listener {
            // The handler runs on the connection's poll loop: no thread crossing per read.
            group.addTask(executorPreference: connection.executor) {
                do {
                    // Read the request head, then answer and close.
                    var request: [UInt8] = []
                    while !request.ends(with: Array("\r\n\r\n".utf8)), let chunk = try await connection.receive() {
                        request += chunk
                    }
                    let body = "hello from a key on a PKCS#11 token, over \(connection.info.protocolVersion)\n"
                    let response = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)"
                    try await connection.write(Array(response.utf8))
                } catch {
                    print("\(connection.remoteAddress): \(error)")
                }
                await connection.close()
            }
        }
    } catch {
        print("listener stopped: \(error)")
    }
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}
