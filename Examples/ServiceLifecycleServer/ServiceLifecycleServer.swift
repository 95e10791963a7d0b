// ServiceLifecycleServer: an echo server run as a swift-service-lifecycle
// service. SIGTERM or SIGINT starts a graceful shutdown: no new connections,
// 5 seconds for open ones to finish, then close_notify to the rest.
//
//   swift run ServiceLifecycleServer [PORT]
//   openssl s_client -connect 127.0.0.1:8443 -quiet      # type lines; Ctrl-C the server
import AsyncNSS
import AsyncNSSServiceLifecycle
import Logging
import ServiceLifecycle
import UnixSignals

@main
struct ServiceLifecycleServerExample {
    static func main() async throws {
        let logger = Logger(label: "ServiceLifecycleServer")
        let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 8443
        let identity = try await TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])
        let listener = try await TLSListener.bind(port: port, configuration: .makeServerConfiguration(identity: identity), logger: logger)
        print("echoing on \(listener.localAddress)")

        let server = TLSServer(listener: listener, gracePeriod: .seconds(5), logger: logger) { connection in
            for try await chunk in connection.inbound {
                try await connection.write(chunk)
            }
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: server)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
        print("stopped")
    }
}
