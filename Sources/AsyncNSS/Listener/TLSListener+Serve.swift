import Logging

extension TLSListener {
    /// Runs `handler` for each connection, on the connection's event loop,
    /// and closes the connection (with close_notify) when the handler returns
    /// or throws. Returns once the listener is closed (``close()`` or
    /// ``shutdown(gracePeriod:)``) and every handler has returned.
    ///
    /// This is the cheapest way to serve: one task per connection runs the
    /// handshake and then the handler, on the connection's loop and with the
    /// connection's executor, so the handler's reads and writes make no
    /// thread crossing and no executor hop. Do not block in `handler`: it
    /// would stall the other connections of its loop. An error thrown by
    /// `handler` is logged at debug level on the connection's logger.
    ///
    /// ```swift
    /// await listener.serve { connection in
    ///     for try await chunk in connection.inbound { try await connection.write(chunk) }
    /// }
    /// ```
    ///
    /// Closing the listener stops accepting; the handlers that run go on.
    /// Cancelling the task that runs `serve` closes the listener and cancels
    /// the handlers; `serve` still returns only after the last one.
    ///
    /// A handler's task is started by the listener's accept loop, so it
    /// inherits the priority and task-local values of the task that called
    /// ``bind(host:port:configuration:backlog:logger:metrics:)``, not of the
    /// task that calls `serve`. Iterate the listener when handlers must
    /// inherit the serving task's context (a tracing span, say).
    ///
    /// Iterate the listener or call `serve`, not both.
    public nonisolated func serve(_ handler: @escaping @Sendable (TLSConnection) async throws -> Void) async {
        let handler = delivery.start(handler)
        await withTaskCancellationHandler {
            // Connections that reached the sequence before the handler was
            // set, if any; the sequence ends when the listener closes.
            await withDiscardingTaskGroup { group in
                do {
                    for try await connection in self {
                        group.addTask(executorPreference: connection.executor) { [delivery] in
                            await delivery.run(connection, with: handler)
                        }
                    }
                } catch {
                    logger.debug("the listener ended", metadata: ["error": "\(error)"])
                }
            }
            await delivery.waitUntilIdle()
        } onCancel: {
            delivery.cancelAll()
        }
    }
}
