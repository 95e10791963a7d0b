import AsyncNSS
import Foundation
import Logging
import Testing

extension Integration {
    @Suite("PROXY protocol: the client's address from a proxy's header")
    struct ProxyProtocolTests {
        /// What the server saw of the first connection it accepted.
        struct Seen: Sendable {
            let remoteAddress: String
            let header: ProxyProtocolHeader?
            let info: TLSConnectionInfo
        }

        /// A listener that requires PROXY headers; it answers each connection
        /// with `peer: ADDR` and its first chunk, then closes.
        static func listener(_ configuration: TLSConfiguration, logger: Logger? = nil) async throws -> TLSListener {
            var configuration = configuration
            configuration.proxyProtocol = .required
            return try await TLSListener.bind(port: 0, configuration: configuration, logger: logger)
        }

        /// Serves the first connection of `listener` that completes its handshake.
        static func serveFirst(_ listener: TLSListener) -> Task<Seen?, any Error> {
            Task {
                for try await connection in listener {
                    let seen = Seen(remoteAddress: connection.remoteAddress, header: connection.proxyHeader, info: connection.info)
                    try await connection.executeThenClose { connection in
                        let request = try await connection.receive() ?? []
                        let body = "peer: \(connection.remoteAddress)\n"
                        if request.starts(with: Array("GET ".utf8)) {
                            try await connection.write(Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8))
                        } else {
                            try await connection.write(Array(body.utf8) + request)
                        }
                    }
                    return seen
                }
                return nil
            }
        }

        /// Connects in plain TCP, sends `header`, then runs TLS as a client
        /// and returns what the server wrote back to `message`.
        static func connectBehind(_ header: [UInt8], port: Int, configuration: TLSConfiguration, message: [UInt8] = [0x2A]) async throws -> String {
            let plain = try await TCPConnection.connect(host: "127.0.0.1", port: port)
            try await plain.write(header)
            let client = try await plain.startTLS(configuration, role: .client)
            try await client.write(message)
            let (text, _) = try await TestServers.readToEnd(client)
            await client.close()
            return text
        }

        static func pemConfigurations(rsa: Bool, version: TLSVersion) async throws -> (server: TLSConfiguration, client: TLSConfiguration) {
            let pki = try await TestPKI.shared()
            let identity = try await TLSIdentity.pem(
                certificateChainFile: rsa ? pki.rsaServerCertificate : pki.serverCertificate,
                privateKeyFile: rsa ? pki.rsaServerKey : pki.serverKey)
            var server = TLSConfiguration.makeServerConfiguration(identity: identity)
            server.minimumVersion = version
            server.maximumVersion = version
            var client = TLSConfiguration.makeClientConfiguration(trust: try await .pem(file: pki.caCertificate))
            client.serverName = "localhost"
            client.minimumVersion = version
            client.maximumVersion = version
            return (server, client)
        }

        @Test("a v2 header's client address and TLVs reach the connection (EC and RSA PEM identities, TLS 1.2 and 1.3)",
              arguments: [(false, TLSVersion.tls12), (false, .tls13), (true, .tls12), (true, .tls13)])
        func v2HeaderReachesConnection(rsa: Bool, version: TLSVersion) async throws {
            try await withTimeout(seconds: 30) {
                let (serverConfiguration, clientConfiguration) = try await Self.pemConfigurations(rsa: rsa, version: version)
                let listener = try await Self.listener(serverConfiguration)
                let server = Self.serveFirst(listener)
                let header = ProxyHeaders.v2(source: [203, 0, 113, 7], sourcePort: 4242, destination: [192, 0, 2, 1], destinationPort: 443,
                                             fields: [(0x02, Array("www.example.com".utf8)), (0x05, [0xDE, 0xAD, 0xBE, 0xEF])])
                let answer = try await Self.connectBehind(header, port: listener.port, configuration: clientConfiguration)
                #expect(answer == "peer: 203.0.113.7:4242\n*")
                let seen = try #require(try await server.value)
                #expect(seen.remoteAddress == "203.0.113.7:4242")
                #expect(seen.header?.version == .v2)
                #expect(seen.header?.destination?.description == "192.0.2.1:443")
                #expect(seen.header?.authority == "www.example.com")
                #expect(seen.header?.uniqueID == [0xDE, 0xAD, 0xBE, 0xEF])
                #expect(seen.info.protocolVersion == version)
                await listener.close()
            }
        }

        @Test("the header comes before a ClientHello read for its SNI name: the name's identity is chosen")
        func headerThenServerNameIdentity() async throws {
            try await withTimeout(seconds: 30) {
                let named = try await TLSIdentity.selfSigned(names: ["a.test"])
                var serverConfiguration = try await TestIdentities.serverConfiguration()
                serverConfiguration.serverNameIdentities = ["a.test": named]
                let listener = try await Self.listener(serverConfiguration)
                let server = Self.serveFirst(listener)
                var clientConfiguration = TLSConfiguration.makeClientConfiguration(trust: .certificates(named.certificateChain))
                clientConfiguration.serverName = "a.test"
                let header = ProxyHeaders.v1("PROXY TCP6 2001:db8::5 2001:db8::1 50000 443\r\n")
                let answer = try await Self.connectBehind(header, port: listener.port, configuration: clientConfiguration)
                #expect(answer == "peer: [2001:db8::5]:50000\n*")
                let seen = try #require(try await server.value)
                #expect(seen.info.serverName == "a.test")
                #expect(seen.header?.version == .v1)
                await listener.close()
            }
        }

        @Test("curl --haproxy-protocol (v1): the listener sees curl's own port",
              .enabled(if: ExternalTool.isInstalled("curl")))
        func curlV1() async throws {
            try await withTimeout(seconds: 30) {
                let listener = try await Self.listener(try await TestIdentities.serverConfiguration())
                let server = Self.serveFirst(listener)
                // Below the kernel's ephemeral range, so that no other
                // socket's port can be mistaken for curl's.
                let curl = try await ExternalTool.run("curl", ["-sk", "--max-time", "20", "--haproxy-protocol", "--local-port", "20000-20999", "https://127.0.0.1:\(listener.port)/"])
                #expect(curl.status == 0, "\(curl)")
                let seen = try #require(try await server.value)
                #expect(seen.header?.version == .v1)
                let port = try #require(Int(seen.remoteAddress.split(separator: ":").last ?? ""))
                #expect((20000...20999).contains(port), "\(seen.remoteAddress)")
                #expect(curl.stdout == "peer: \(seen.remoteAddress)\n")
                await listener.close()
            }
        }

        @Test("HAProxy with send-proxy-v2 in front: the listener sees the client's address and port, not HAProxy's",
              .enabled(if: ExternalTool.isInstalled("haproxy", "curl")))
        func haproxyV2() async throws {
            try await withTimeout(seconds: 60) {
                let listener = try await Self.listener(try await TestIdentities.serverConfiguration())
                let server = Self.serveFirst(listener)
                let haproxy = try await HAProxy.start(backends: [listener.port])
                let curl = try await ExternalTool.run("curl", ["-sk", "--max-time", "20", "--local-port", "21000-21999", "https://127.0.0.1:\(haproxy.port)/"])
                let haproxyOutput = haproxy.stop()
                #expect(curl.status == 0, "\(curl)\n\(haproxyOutput)")
                let seen = try #require(try await server.value)
                #expect(seen.header?.version == .v2)
                #expect(seen.header?.destination?.description == "127.0.0.1:\(haproxy.port)")
                let port = try #require(Int(seen.remoteAddress.split(separator: ":").last ?? ""))
                #expect((21000...21999).contains(port), "\(seen.remoteAddress)")
                #expect(curl.stdout == "peer: \(seen.remoteAddress)\n")
                await listener.close()
            }
        }

        @Test("a missing, malformed, oversized or late header closes only that connection, logged; the listener goes on and keeps no descriptor")
        func badHeaders() async throws {
            try await withTimeout(seconds: 60) {
                let baseline = FileDescriptors.count()
                let (logger, log) = CapturingLogHandler.logger()
                var serverConfiguration = try await TestIdentities.serverConfiguration()
                serverConfiguration.handshakeTimeout = .seconds(1)
                let listener = try await Self.listener(serverConfiguration, logger: logger)
                let port = listener.port
                let server = Self.serveFirst(listener)
                let inputs: [(String, [UInt8])] = [
                    ("a bare ClientHello", [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]),
                    ("garbage", Array("HELLO THERE\r\n".utf8)),
                    ("a v1 line too long", Array(("PROXY UNKNOWN " + String(repeating: "x", count: 200)).utf8)),
                    ("a v2 header above 536 bytes", ProxyHeaders.signature + [0x21, 0x11, 0x04, 0x00]),
                ]
                for (name, bytes) in inputs {
                    let answer = try await onOwnThread {
                        let raw = try RawTCP(port: port, timeout: 10)
                        defer { raw.close() }
                        raw.send(bytes)
                        return raw.readAll()
                    }
                    #expect(answer.isEmpty, "\(name): the server answered \(answer.count) bytes instead of closing")
                }
                // Half a header, then silence: closed at the handshake deadline.
                let started = ContinuousClock.now
                let late = try await onOwnThread {
                    let raw = try RawTCP(port: port, timeout: 10)
                    defer { raw.close() }
                    raw.send(Array("PROXY TCP4 1.2.3.4".utf8))
                    return raw.readAll()
                }
                #expect(late.isEmpty)
                #expect(ContinuousClock.now - started < .seconds(8), "the late header was not cut off at the 1 s deadline")
                // Meanwhile and afterwards, a good connection is served.
                let header = ProxyHeaders.v1("PROXY TCP4 198.51.100.1 127.0.0.1 1234 443\r\n")
                let answer = try await Self.connectBehind(header, port: port, configuration: try await TestIdentities.clientConfiguration(), message: Array("ok".utf8))
                #expect(answer == "peer: 198.51.100.1:1234\nok")
                #expect(try await server.value?.remoteAddress == "198.51.100.1:1234", "no earlier connection reached the listener's sequence")
                let refusals = log.all.filter { $0.contains("PROXY protocol header refused") }
                #expect(refusals.count == inputs.count + 1, "\(log.all)")
                #expect(refusals.contains { $0.contains("no complete PROXY protocol header arrived in time") }, "\(refusals)")
                #expect(refusals.contains { $0.contains("did not start with a PROXY protocol header") }, "\(refusals)")
                await listener.close()
                #expect(await FileDescriptors.settle(at: baseline) == baseline)
            }
        }

        @Test("a client configuration with the PROXY protocol is refused")
        func clientRefused() async throws {
            try await withTimeout(seconds: 30) {
                var configuration = try await TestIdentities.clientConfiguration()
                configuration.proxyProtocol = .required
                await #expect {
                    _ = try await TLSConnection.connect(host: "127.0.0.1", port: 9, configuration: configuration)
                } throws: { error in
                    (error as? TLSError)?.kind == .invalidConfiguration
                }
            }
        }
    }
}

/// HAProxy in TCP mode on a free loopback port, with `send-proxy-v2` to
/// each backend port, started from a configuration written for the test.
struct HAProxy: Sendable {
    let process: ChildProcess
    let port: Int
    let directory: TemporaryDirectory

    /// The frontend ports, in the order given to `configuration`.
    var ports: [Int] = []

    /// HAProxy with the configuration that `configuration` writes for
    /// `frontends` free ports; ``port`` is the first.
    static func start(frontends: Int, configuration: ([Int]) -> String) async throws -> HAProxy {
        let ports = try (0..<frontends).map { _ in try RawTCP.freePort() }
        let directory = try TemporaryDirectory()
        let file = try directory.write("haproxy.cfg", configuration(ports))
        let process = try ChildProcess("haproxy", ["-f", file, "-db"])
        do {
            for port in ports { try await RawTCP.waitUntilListening(port: port) }
        } catch {
            throw HAProxyNotStarted(output: process.stop())
        }
        var proxy = HAProxy(process: process, port: ports[0], directory: directory)
        proxy.ports = ports
        return proxy
    }

    static func start(backends: [Int], balance: String = "roundrobin") async throws -> HAProxy {
        let port = try RawTCP.freePort()
        let directory = try TemporaryDirectory()
        var configuration = """
        defaults
            mode tcp
            timeout connect 5s
            timeout client 30s
            timeout server 30s
        frontend tls
            bind 127.0.0.1:\(port)
            default_backend servers
        backend servers
            balance \(balance)

        """
        for (index, backend) in backends.enumerated() {
            configuration += "    server s\(index) 127.0.0.1:\(backend) send-proxy-v2\n"
        }
        let file = try directory.write("haproxy.cfg", configuration)
        // -db: stay in the foreground, so that the test owns the process.
        let process = try ChildProcess("haproxy", ["-f", file, "-db"])
        do {
            try await RawTCP.waitUntilListening(port: port)
        } catch {
            throw HAProxyNotStarted(output: process.stop())
        }
        return HAProxy(process: process, port: port, directory: directory)
    }

    /// Stops HAProxy; returns what it printed.
    @discardableResult
    func stop() -> String { process.stop() }

    struct HAProxyNotStarted: Error, CustomStringConvertible {
        let output: String
        var description: String { "haproxy did not start listening:\n\(output)" }
    }
}
