import Synchronization

/// Something that holds NSS objects and must let go of them before NSS shuts down.
protocol RuntimeResource: AnyObject, Sendable {
    /// Closes sockets, destroys certificates and keys. Idempotent.
    func releaseForShutdown() async
}

/// The live sockets, certificates and keys of the runtime, so that
/// ``NSSRuntime/shutdown()`` can close everything in the right order.
final class ResourceRegistry: Sendable {
    private struct Entry {
        weak var resource: (any RuntimeResource)?
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    func add(_ resource: any RuntimeResource) {
        entries.withLock { $0[ObjectIdentifier(resource)] = Entry(resource: resource) }
    }

    /// Forgets a resource; by identifier, so that a `deinit` can call it.
    func remove(_ id: ObjectIdentifier) {
        _ = entries.withLock { $0.removeValue(forKey: id) }
    }

    /// How many resources are registered; for tests.
    var count: Int { entries.withLock { $0.count } }

    /// Releases sockets first, then certificates and keys.
    func releaseAll() async {
        let resources = entries.withLock { entries -> [any RuntimeResource] in
            defer { entries.removeAll() }
            return entries.values.compactMap(\.resource)
        }
        let isSocket = { (resource: any RuntimeResource) in resource is SocketHandle || resource is DroppedSocket }
        for resource in resources where isSocket(resource) {
            await resource.releaseForShutdown()
        }
        for resource in resources where !isSocket(resource) {
            await resource.releaseForShutdown()
        }
    }
}
