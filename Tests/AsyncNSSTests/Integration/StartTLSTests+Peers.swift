import AsyncNSS
import Foundation
import Testing

extension Integration.StartTLSTests {
    /// An SMTP-like server in Python whose TLS is OpenSSL's (the `ssl`
    /// module): greets, answers EHLO, upgrades on STARTTLS, answers one line
    /// inside TLS, then closes with close_notify and waits for the client's.
    /// It prints what it saw, one `key: value` per line.
    static let pythonSMTPServer = #"""
    import os, socket, ssl, sys
    port_file, certificate, key, version = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pinned = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
    context.minimum_version = context.maximum_version = pinned
    context.load_cert_chain(certificate, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)
    # The port is written once the socket listens, so that the first connection is the client's.
    with open(port_file + ".tmp", "w") as f:
        f.write(str(listener.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    plain, _ = listener.accept()
    plain.settimeout(20)

    def line(sock):
        # One byte at a time: nothing after the newline may be taken from TLS.
        data = b""
        while not data.endswith(b"\n"):
            byte = sock.recv(1)
            if not byte:
                raise SystemExit("plain: the client closed early")
            data += byte
        return data.decode()

    plain.sendall(b"220 python ESMTP\r\n")
    print("ehlo:", line(plain).strip(), flush=True)
    plain.sendall(b"250-python\r\n250 STARTTLS\r\n")
    print("command:", line(plain).strip(), flush=True)
    plain.sendall(b"220 ready\r\n")
    secure = context.wrap_socket(plain, server_side=True)
    print("version:", secure.version(), flush=True)
    received = b""
    while not received.endswith(b"\n"):
        chunk = secure.recv(100)
        if not chunk:
            raise SystemExit("tls: the client closed early")
        received += chunk
    print("received:", received.decode().strip(), flush=True)
    secure.sendall(b"250 got it over " + secure.version().encode() + b"\r\n")
    secure.unwrap()   # sends close_notify, returns once the client's has arrived
    print("close_notify: received", flush=True)
    """#

    /// Waits for a port number that a child process writes to a file.
    static func readPort(_ path: String) async throws -> Int {
        for _ in 0..<200 {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), let port = Int(text) { return port }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw POSIXError(.ETIMEDOUT)
    }

    @Test("our client upgrades with STARTTLS against a Python (OpenSSL) SMTP server and verifies it",
          .enabled(if: ExternalTool.isInstalled("python3"), "needs python3"),
          arguments: [TLSVersion.tls12, .tls13])
    func clientAgainstPython(version: TLSVersion) async throws {
        try await withTimeout(seconds: 60) {
            let pki = try await TestPKI.shared()
            let directory = try TemporaryDirectory()
            let script = try directory.write("smtp.py", Self.pythonSMTPServer)
            let portFile = directory.file("port")
            let server = try ChildProcess("python3", [script, portFile, pki.rsaServerCertificate, pki.rsaServerKey, version == .tls12 ? "1.2" : "1.3"])
            defer { server.stop() }
            let port = try await Self.readPort(portFile)

            let plain = try await TCPConnection.connect(host: "127.0.0.1", port: port)
            #expect(try await Self.line(plain) == "220 python ESMTP\r\n")
            try await plain.write(Array("EHLO client\r\n".utf8))
            // Both lines of the reply may come in one read.
            var reply = try await Self.line(plain)
            while !reply.hasSuffix("250 STARTTLS\r\n") { reply += try await Self.line(plain) }
            #expect(reply == "250-python\r\n250 STARTTLS\r\n")
            try await plain.write(Array("STARTTLS\r\n".utf8))
            #expect(try await Self.line(plain) == "220 ready\r\n")
            var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
            client.serverName = "localhost"
            let secure = try await plain.startTLS(client, role: .client)
            #expect(secure.info.protocolVersion == version)
            let presented = try String(contentsOfFile: pki.rsaServerCertificate, encoding: .utf8)
            #expect(secure.info.peerCertificates.first?.pemRepresentation.filter { !$0.isWhitespace } == presented.filter { !$0.isWhitespace })
            try await secure.write(Array("MAIL FROM:<a@b>\r\n".utf8))
            #expect(try await TestServers.read(secure, through: "\r\n") == "250 got it over TLSv1.\(version == .tls12 ? "2" : "3")\r\n")
            // The server's close_notify ends the stream cleanly: not truncated.
            let rest = try await TestServers.readToEnd(secure)
            #expect(rest.text.isEmpty && !rest.truncated, "\(rest)")
            await secure.close()

            let status = try await onOwnThread { server.waitForExit() }
            let (out, err) = server.output()
            #expect(status == 0, "exit \(status)\n\(out)\n\(err)")
            #expect(out.contains("ehlo: EHLO client"), "\(out)")
            #expect(out.contains("version: TLSv1.\(version == .tls12 ? "2" : "3")"), "\(out)")
            #expect(out.contains("received: MAIL FROM:<a@b>"), "\(out)")
            #expect(out.contains("close_notify: received"), "\(out)\n\(err)")
        }
    }

    /// The handshake deadline of a STARTTLS server counts from the call, and
    /// so covers reading the ClientHello for its server name: a client that
    /// sends its hello late and then goes quiet is cut off at
    /// `handshakeTimeout`, not at the hello's arrival plus `handshakeTimeout`.
    @Test("a STARTTLS server's handshake deadline covers reading the ClientHello for its server name")
    func deadlineCoversServerNameRead() async throws {
        try await withTimeout(seconds: 30) {
            let listener = try await TCPListener.bind(port: 0)
            var configuration = try await TestIdentities.serverConfiguration()
            configuration.serverNameIdentities = ["other.test": try await TestIdentities.localhost()]
            configuration.handshakeTimeout = .seconds(2)
            let server = Task { () -> (Duration, (any Error)?) in
                let plain = try await listener.accept()
                let started = ContinuousClock.now
                do {
                    let secure = try await plain.startTLS(configuration, role: .server)
                    await secure.close()
                    return (started.duration(to: .now), nil)
                } catch {
                    return (started.duration(to: .now), error)
                }
            }
            let client = try await TCPConnection.connect(host: "127.0.0.1", port: listener.port)
            try await Task.sleep(for: .milliseconds(1_800))
            // A well-formed hello, then nothing more.
            try await client.write(RawClientHello(cipherSuites: [0xC02B, 0xC02F]).bytes)
            let (elapsed, error) = try await server.value
            #expect((error as? TLSError)?.kind == .handshakeTimedOut, "\(String(describing: error))")
            // 2 s from the call; counting from the hello would give 3.8 s.
            #expect(elapsed < .seconds(3), "\(elapsed)")
            await client.close()
            await listener.close()
        }
    }
}
