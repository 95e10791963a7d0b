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

    func remove(_ resource: any RuntimeResource) {
        _ = entries.withLock { $0.removeValue(forKey: ObjectIdentifier(resource)) }
    }

    /// How many resources are registered; for tests.
    var count: Int { entries.withLock { $0.count } }

    /// Releases sockets first, then certificates and keys.
    func releaseAll() async {
        let resources = entries.withLock { entries -> [any RuntimeResource] in
            defer { entries.removeAll() }
            return entries.values.compactMap(\.resource)
        }
        for resource in resources where resource is SocketHandle {
            await resource.releaseForShutdown()
        }
        for resource in resources where !(resource is SocketHandle) {
            await resource.releaseForShutdown()
        }
    }
}
