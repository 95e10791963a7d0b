import AsyncNSS
import Foundation
import Testing

extension Integration {
    @Suite("PROXY protocol on a plain TCP listener (STARTTLS)")
    struct TCPListenerProxyTests {
        @Test("the header names the client; the plain line after it, then STARTTLS, work; the TLS connection keeps the header",
              arguments: [TLSVersion.tls12, .tls13])
        func headerThenStartTLS(version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await TCPListener.bind(port: 0, proxyProtocol: .required)
                let serverConfiguration = try await TestIdentities.serverConfiguration(min: version, max: version)
                let server = Task { () -> (String, ProxyProtocolHeader?, String, ProxyProtocolHeader?) in
                    let plain = try await listener.accept()
                    #expect(try await StartTLSTests.line(plain) == "STARTTLS\n")
                    try await plain.write(Array("220 go ahead\n".utf8))
                    let secure = try await plain.startTLS(serverConfiguration, role: .server)
                    try await EchoServer.echo(secure)
                    return (plain.remoteAddress, plain.proxyHeader, secure.remoteAddress, secure.proxyHeader)
                }
                let client = try await TCPConnection.connect(host: "localhost", port: listener.port)
                // The header and the first line in one write: the line must survive the header's read.
                try await client.write(ProxyHeaders.v1("PROXY TCP4 203.0.113.9 192.0.2.1 1111 25\r\n") + Array("STARTTLS\n".utf8))
                #expect(try await StartTLSTests.line(client) == "220 go ahead\n")
                let secure = try await client.startTLS(try await TestIdentities.clientConfiguration(min: version, max: version), role: .client)
                try await secure.write([7, 8, 9])
                var iterator = secure.inbound.makeAsyncIterator()
                #expect(try await iterator.next() == [7, 8, 9])
                await secure.close()
                let (plainAddress, plainHeader, secureAddress, secureHeader) = try await server.value
                #expect(plainAddress == "203.0.113.9:1111")
                #expect(plainHeader?.destination?.description == "192.0.2.1:25")
                #expect(secureAddress == "203.0.113.9:1111")
                #expect(secureHeader == plainHeader)
                await listener.close()
            }
        }

        @Test("a silent client holds up no other; it and a bad header are closed; a dropped listener keeps no descriptor")
        func silentAndBadClients() async throws {
            try await withTimeout(seconds: 30) {
                let baseline = FileDescriptors.count()
                var listener: TCPListener? = try await TCPListener.bind(port: 0, proxyProtocol: .required, headerTimeout: .seconds(2))
                let port = try #require(listener?.port)
                let silent = Task { try await onOwnThread { () -> [UInt8] in
                    let raw = try RawTCP(port: port, timeout: 10)
                    defer { raw.close() }
                    return raw.readAll()
                } }
                let bad = try await onOwnThread { () -> [UInt8] in
                    let raw = try RawTCP(port: port, timeout: 10)
                    defer { raw.close() }
                    raw.send(Array("GET / HTTP/1.1\r\n\r\n".utf8))
                    return raw.readAll()
                }
                #expect(bad.isEmpty, "a bad header was answered")
                let started = ContinuousClock.now
                let client = try await TCPConnection.connect(host: "127.0.0.1", port: port)
                try await client.write(ProxyHeaders.v2(source: [198, 51, 100, 3], sourcePort: 7, destination: [127, 0, 0, 1], destinationPort: 25))
                let accepted = try await #require(listener).accept()
                #expect(ContinuousClock.now - started < .seconds(2), "the silent client held up the accept")
                #expect(accepted.remoteAddress == "198.51.100.3:7")
                #expect(try await silent.value.isEmpty, "the silent client was not closed at the header deadline")
                await accepted.close()
                await client.close()
                listener = nil
                #expect(await FileDescriptors.settle(at: baseline) == baseline)
            }
        }
    }
}
