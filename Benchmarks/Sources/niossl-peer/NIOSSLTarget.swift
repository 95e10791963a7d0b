import NIOCore
import NIOPosix
import NIOSSL
import PeerKit

/// A load client made of NIOSSL client channels.
struct NIOSSLTarget: LoadTarget {
    let host: String
    let port: Int
    let serverName: String
    let context: NIOSSLContext

    func connect() async throws -> NIOSSLConnection {
        try await open()
    }

    func bulkEcho(totalBytes: Int, chunkSize: Int) async throws {
        let connection = try await open()
        let handler = connection.handler
        try await connection.channel.eventLoop.flatSubmit {
            handler.value.bulkEcho(totalBytes: totalBytes, chunkSize: chunkSize)
        }.get()
        await connection.close()
    }

    /// Connects, adds NIOSSL and a ``ClientHandler``, and waits for the handshake.
    private func open() async throws -> NIOSSLConnection {
        let context = self.context
        let serverName = self.serverName
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        try NIOSSLClientHandler(context: context, serverHostname: serverName),
                        ClientHandler(handshake: channel.eventLoop.makePromise(of: Void.self)))
                }
            }
            .connect(host: host, port: port)
            .get()
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: ClientHandler.self), eventLoop: channel.eventLoop)
        }.get()
        try await channel.eventLoop.flatSubmit { handler.value.handshake.futureResult }.get()
        return NIOSSLConnection(channel: channel, handler: handler)
    }
}

/// One NIOSSL client connection of a load.
struct NIOSSLConnection: LoadConnection {
    let channel: any Channel
    let handler: NIOLoopBound<ClientHandler>

    func exchange(_ message: [UInt8], expecting: Int) async throws {
        let handler = self.handler
        try await channel.eventLoop.flatSubmit {
            handler.value.exchange(message, expecting: expecting)
        }.get()
    }

    func close() async {
        try? await channel.close()
    }
}
