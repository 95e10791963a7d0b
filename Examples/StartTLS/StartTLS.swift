// StartTLS: a small line protocol that starts in plain TCP and upgrades the
// same socket to TLS in the middle of the conversation, as SMTP and IMAP do.
// Both sides run in this one program:
//
//   swift run StartTLS
//
//   C: HELLO            S: 250 hello
//   C: STARTTLS         S: 220 go ahead
//   ---- TLS handshake on the same socket ----
//   C: secret           S: echo: secret
import AsyncNSS

@main
struct StartTLSExample {
    static func main() async throws {
        let identity = try await TLSIdentity.selfSigned(names: ["localhost"])
        let listener = try await TCPListener.bind(port: 0)
        print("plain TCP on \(listener.localAddress)")

        async let served: Void = serve(listener, identity: identity)

        let tcp = try await TCPConnection.connect(host: "127.0.0.1", port: listener.port)
        print("C: HELLO ->", try await exchange(tcp, "HELLO"))
        print("C: STARTTLS ->", try await exchange(tcp, "STARTTLS"))
        var client = TLSConfiguration.makeClientConfiguration(trust: .certificates(identity.certificateChain))
        client.serverName = "localhost"
        let tls = try await tcp.startTLS(client, role: .client)
        print("upgraded: \(tls.info.protocolVersion) \(tls.info.cipherSuite)")
        try await tls.write(Array("secret\n".utf8))
        print("C: secret ->", String(decoding: try await tls.receive() ?? [], as: UTF8.self), terminator: "")
        await tls.close()
        try await served
        await listener.close()
    }
}

/// Sends a line over plain TCP and returns the answer line.
func exchange(_ connection: TCPConnection, _ line: String) async throws -> String {
    try await connection.write(Array("\(line)\n".utf8))
    return String(decoding: try await connection.receive() ?? [], as: UTF8.self).trimmingTrailingNewline()
}

/// Serves one client: plain lines until STARTTLS, then TLS.
func serve(_ listener: TCPListener, identity: TLSIdentity) async throws {
    let connection = try await listener.accept()
    while let line = try await connection.receive() {
        switch String(decoding: line, as: UTF8.self).trimmingTrailingNewline() {
        case "HELLO":
            try await connection.write(Array("250 hello\n".utf8))
        case "STARTTLS":
            try await connection.write(Array("220 go ahead\n".utf8))
            let tls = try await connection.startTLS(.makeServerConfiguration(identity: identity), role: .server)
            while let chunk = try await tls.receive() {
                try await tls.write(Array("echo: ".utf8) + chunk)
            }
            await tls.close()
            return
        default:
            try await connection.write(Array("500 unknown\n".utf8))
        }
    }
}

extension String {
    func trimmingTrailingNewline() -> String {
        var text = self
        while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
        return text
    }
}
