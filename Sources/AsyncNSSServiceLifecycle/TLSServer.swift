public import AsyncNSS
public import Logging
public import ServiceLifecycle

/// A TLS server as a swift-service-lifecycle `Service`: it serves every
/// connection of a listener with `handler`, each in a child task, and shuts
/// down gracefully.
///
/// ```swift
/// let listener = try await TLSListener.bind(port: 8443, configuration: configuration)
/// let server = TLSServer(listener: listener, logger: logger) { connection in
///     for try await chunk in connection.inbound { try await connection.write(chunk) }
/// }
/// let group = ServiceGroup(configuration: .init(services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
/// try await group.run()
/// ```
///
/// On graceful shutdown (SIGTERM through a `ServiceGroup`, say) it stops
/// accepting, gives the handlers running up to ``gracePeriod`` to return,
/// then cancels them; every connection is closed with close_notify. On
/// cancellation it does the same without waiting.
///
/// This differs on purpose from `TLSListener.shutdown(gracePeriod:)`,
/// which waits for *connections* and then closes them under whoever uses them:
/// the server owns the handler tasks, so it waits for *handlers* and cancels
/// them, which lets each one end (and clean up) in its own way.
public struct TLSServer: Service {
    /// The listener whose connections this server serves.
    public let listener: TLSListener
    /// How long running handlers may go on after a graceful shutdown began.
    public let gracePeriod: Duration
    private let logger: Logger
    private let handler: @Sendable (TLSConnection) async throws -> Void

    /// A server for `listener`'s connections; ``run()`` serves them.
    ///
    /// - Parameters:
    ///   - listener: A bound listener; the server closes it when it stops.
    ///   - gracePeriod: How long running handlers may go on after a graceful
    ///     shutdown began, before they are cancelled.
    ///   - logger: Where the server logs its shutdown steps.
    ///   - handler: Serves one connection; the server closes the
    ///     connection when it returns or throws (errors are logged at debug
    ///     on the connection's `logger`).
    public init(
        listener: TLSListener,
        gracePeriod: Duration = .seconds(10),
        logger: Logger = Logger(label: "AsyncNSS.TLSServer"),
        handler: @escaping @Sendable (TLSConnection) async throws -> Void
    ) {
        self.listener = listener
        self.gracePeriod = gracePeriod
        self.logger = logger
        self.handler = handler
    }

    private enum Event: Sendable {
        /// The listener ended and every handler returned.
        case served
        /// A graceful shutdown began, or the task was cancelled.
        case shutdownRequested
        case gracePeriodOver
    }

    /// Serves connections, each in a child task of a discarding task group,
    /// until the listener closes, a graceful shutdown has drained (see
    /// ``gracePeriod``), or the task is cancelled.
    public func run() async throws {
        await withTaskGroup(of: Event.self) { group in
            group.addTask { await serveConnections(); return .served }
            group.addTask {
                try? await gracefulShutdown()
                return .shutdownRequested
            }
            if await group.next() == .shutdownRequested {
                logger.notice("shutting down: no new connections; running handlers have \(gracePeriod)", metadata: ["address": "\(listener.localAddress)"])
                await listener.close()
                group.addTask {
                    try? await Task.sleep(for: gracePeriod)
                    return .gracePeriodOver
                }
                if await group.next() == .gracePeriodOver {
                    logger.notice("grace period over: cancelling the remaining handlers", metadata: ["open": "\(listener.openConnectionCount)"])
                }
            }
            group.cancelAll()
        }
        // Whatever a handler left open is closed with close_notify.
        await listener.shutdown(gracePeriod: .zero)
    }

    private func serveConnections() async {
        await listener.serve(handler)
    }
}
