import AsyncNSS
import Testing

/// A connected pair over loopback.
struct ConnectedPair {
    let listener: TLSListener
    let server: TLSConnection
    let client: TLSConnection

    static func make(server serverConfiguration: TLSConfiguration, client clientConfiguration: TLSConfiguration) async throws -> ConnectedPair {
        let listener = try await TLSListener.bind(port: 0, configuration: serverConfiguration)
        let accepted = Task { () -> TLSConnection? in
            for try await connection in listener { return connection }
            return nil
        }
        let client = try await TLSConnection.connect(host: "localhost", port: listener.port, configuration: clientConfiguration)
        let server = try #require(try await accepted.value)
        return ConnectedPair(listener: listener, server: server, client: client)
    }

    func close() async {
        await client.close()
        await server.close()
        await listener.close()
    }
}
