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

    /// Ends a pair whose `echoing` side runs `echo` (``EchoServer/echo(_:)``):
    /// closes the other side, whose close_notify ends the echo, and records
    /// an issue unless the echo then ended cleanly.
    func finish(echo: Task<Void, any Error>, echoing: TLSConnection, sourceLocation: SourceLocation = #_sourceLocation) async {
        await (echoing === server ? client : server).close()
        do {
            try await echo.value
        } catch {
            Issue.record(error, "the echo on the other side ended with an error", sourceLocation: sourceLocation)
        }
        await close()
    }
}
