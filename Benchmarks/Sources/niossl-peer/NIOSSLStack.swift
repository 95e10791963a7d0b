import NIOCore
import NIOPosix
import NIOSSL
import PeerKit

/// SwiftNIO with NIOSSL as a ``PeerStack``: the comparison point. Written the
/// way a NIO user would: channel handlers on the shared event loop group
/// (one thread per core).
enum NIOSSLStack: PeerStack {
    static let name = "niossl-peer"

    static func serve(_ options: ServerOptions) async throws {
        let chain = try NIOSSLCertificate.fromPEMFile(options.cert).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: options.key, format: .pem)
        let context = try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
        let mode = options.mode
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLServerHandler(context: context))
                    switch mode {
                    case .echo: try sync.addHandlers(BackPressureHandler(), EchoHandler())
                    case .http: try sync.addHandler(HelloHTTPHandler())
                    }
                }
            }
            .bind(host: options.host, port: options.port)
            .get()
        announceListening(name, "\(options.host):\(channel.localAddress?.port ?? options.port)")
        try await channel.closeFuture.get()
    }

    static func makeTarget(_ options: ClientOptions) async throws -> NIOSSLTarget {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(options.ca))
        return NIOSSLTarget(
            host: options.host, port: options.port, serverName: options.serverName,
            context: try NIOSSLContext(configuration: configuration))
    }
}

/// Writes back what it reads; `BackPressureHandler` stops reading while the
/// peer does not take the echo.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Answers each HTTP/1.1 request head with the hello page.
final class HelloHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var pending: [UInt8] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        pending += buffer.readBytes(length: buffer.readableBytes) ?? []
        for answer in HTTPHello.takeRequests(from: &pending) {
            switch answer {
            case .respond:
                context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: HTTPHello.response)), promise: nil)
            case .respondAndClose:
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(bytes: HTTPHello.closingResponse)))
                    .whenComplete { _ in channel.close(promise: nil) }
                return
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
