internal import CNSS
import Synchronization

/// The runtime's anti-replay contexts for TLS 1.3 early data, one per
/// window, made when a listener first needs one (NSS keeps one per process:
/// every socket of a listener must share it to see each other's ClientHellos).
///
/// Each socket that holds a context takes a reference of its own, so
/// releasing the runtime's at shutdown frees a context only once its sockets
/// are closed.
final class AntiReplayContexts: Sendable {
    // @unchecked Sendable: opaque NSS pointers, only used under `contexts`'s
    // lock or by NSS, which reference-counts and locks them itself.
    private struct Context: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    private let contexts = Mutex<[Duration: Context]>([:])

    /// The context for `window`, made the first time.
    func context(window: Duration) throws -> OpaquePointer {
        try contexts.withLock { contexts in
            if let context = contexts[window] { return context.pointer }
            let microseconds = window.components.seconds * 1_000_000 + window.components.attoseconds / 1_000_000_000_000
            guard microseconds > 0, let pointer = cnss_create_anti_replay_context(PRTime(microseconds)) else {
                throw TLSError.fromLastNSSError("making the anti-replay context for early data (window \(window))")
            }
            contexts[window] = Context(pointer: pointer)
            return pointer
        }
    }

    /// Drops the runtime's references, at shutdown.
    func releaseAll() {
        let released = contexts.withLock { contexts in
            defer { contexts.removeAll() }
            return Array(contexts.values)
        }
        for context in released { _ = cnss_release_anti_replay_context(context.pointer) }
    }
}
