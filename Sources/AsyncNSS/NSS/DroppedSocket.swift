import Synchronization

/// A descriptor whose ``SocketHandle`` was released while still open.
///
/// It closes in the background as ``SocketHandle/close()`` would: leave the
/// poll set, confirmed by the poll thread, then `PR_Close`, and only then
/// release the callback contexts NSS points to. Until that is done it stays
/// in the runtime's resource registry, so ``NSSRuntime/shutdown()`` waits
/// for it instead of shutting NSS down under an open socket.
final class DroppedSocket: RuntimeResource {
    private let closing = Mutex<Task<Void, Never>?>(nil)

    private init() {}

    static func close(_ socket: PollSocket, pollLoop: PollLoop, callbackContexts: [AnyObject], services: RuntimeServices) {
        let dropped = DroppedSocket()
        services.resources.add(dropped)
        // The contexts move into the task, which is their only user from here on.
        let contexts = UncheckedBox(callbackContexts)
        // The task holds `dropped` until the close is done; nothing else does.
        let task = Task {
            await SocketHandle.quiesceAndClose(socket, on: pollLoop)
            withExtendedLifetime(contexts) {}
            services.resources.remove(ObjectIdentifier(dropped))
        }
        dropped.closing.withLock { $0 = task }
    }

    func releaseForShutdown() async {
        await closing.withLock { $0 }?.value
    }
}
