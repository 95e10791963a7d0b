// EchoServer: a TLS server that echoes every connection.
//
//   swift run EchoServer [PORT]
//   openssl s_client -connect 127.0.0.1:8443 -quiet
//
// It serves a self-signed identity for localhost; swap in
// `TLSIdentity.pem(certificateChainFile:privateKeyFile:)` for a real one.
import AsyncNSS

let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 8443
let identity = try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1", "::1"])
let listener = try await TLSListener.bind(port: port, configuration: .makeServerConfiguration(identity: identity))
print("echoing on \(listener.localAddress)")

await withDiscardingTaskGroup { group in
    do {
        for try await connection in listener {
            // The handler runs on the connection's poll loop: no thread crossing per read.
            group.addTask(executorPreference: connection.executor) {
                do {
                    for try await chunk in connection.inbound {
                        try await connection.write(chunk)
                    }
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
