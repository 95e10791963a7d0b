import NIOCore
import NIOSSL
import NIOTLS

/// The load client's handler: reports the end of the handshake, and runs one
/// operation at a time that completes once a number of bytes came back,
/// either an exchange (one write) or a bulk echo (writes while writable).
final class ClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let handshake: EventLoopPromise<Void>
    private var context: ChannelHandlerContext?
    private var done: EventLoopPromise<Void>?
    private var toReceive = 0
    private var toSend = 0
    private var chunk = ByteBuffer()

    init(handshake: EventLoopPromise<Void>) { self.handshake = handshake }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    /// Writes `message` and completes once `expecting` bytes came back.
    func exchange(_ message: [UInt8], expecting: Int) -> EventLoopFuture<Void> {
        guard let context else { return handshake.futureResult.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        let promise = begin(context, expecting: expecting)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: message)), promise: nil)
        return promise.futureResult
    }

    /// Writes `totalBytes` in `chunkSize` writes as fast as the channel takes
    /// them, and completes once all came back.
    func bulkEcho(totalBytes: Int, chunkSize: Int) -> EventLoopFuture<Void> {
        guard let context else { return handshake.futureResult.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        let promise = begin(context, expecting: totalBytes)
        chunk = context.channel.allocator.buffer(repeating: 0x62, count: chunkSize)
        toSend = totalBytes
        sendWhileWritable(context)
        return promise.futureResult
    }

    private func begin(_ context: ChannelHandlerContext, expecting: Int) -> EventLoopPromise<Void> {
        let promise = context.eventLoop.makePromise(of: Void.self)
        done = promise
        toReceive = expecting
        return promise
    }

    private func sendWhileWritable(_ context: ChannelHandlerContext) {
        guard toSend > 0 else { return }
        while toSend > 0, context.channel.isWritable {
            let size = min(toSend, chunk.readableBytes)
            context.write(wrapOutboundOut(chunk.getSlice(at: chunk.readerIndex, length: size)!), promise: nil)
            toSend -= size
        }
        context.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        sendWhileWritable(context)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { handshake.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        toReceive -= unwrapInboundIn(data).readableBytes
        if toReceive <= 0, let done {
            self.done = nil
            done.succeed()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(ChannelError.eof)
    }

    private func fail(_ error: any Error) {
        handshake.fail(error)
        done?.fail(error)
        done = nil
    }
}
