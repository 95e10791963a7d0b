internal import CNSS
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A thread that the library owns: started with a closure, joined once.
///
/// Blocking calls (`PR_Poll`, DNS, loading PKCS#11 modules) run on threads
/// like this one, never on Swift's cooperative pool.
final class OwnedThread: Sendable {
    /// The pthread handle. Written once in `init` before `self` escapes, then only read by `join`.
    private let handle: pthread_t

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts a thread named `name` that runs `body`.
    init(name: String, body: @escaping @Sendable () -> Void) {
        let context = Unmanaged.passRetained(Body {
            PR_SetCurrentThreadName(name)
            body()
        }).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            let body = Unmanaged<Body>.fromOpaque(raw).takeRetainedValue()
            body.run()
            return nil
        }, context)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        self.handle = thread
    }

    /// Waits for the thread to finish. Call it once.
    func join() {
        _ = pthread_join(handle, nil)
    }

    /// Lets the thread free itself when it finishes; nobody joins it. Call
    /// it once, instead of ``join()``.
    func detach() {
        _ = pthread_detach(handle)
    }
}
