#if ASYNCNSS_TSAN
import Glibc

/// Only in ThreadSanitizer builds (`scripts/sanitizers.sh` passes
/// `-DASYNCNSS_TSAN`): a `Mutex` over `pthread_mutex_t` that shadows
/// `Synchronization.Mutex` everywhere in this module. Normal builds never
/// compile it. (It is not `package`, unlike the continuation shim: the tests
/// import Synchronization too, and `Mutex` would be ambiguous there.)
///
/// Why: on Linux, `Synchronization.Mutex` takes its contended paths
/// (`_lockSlow`, `_unlockSlow`: `FUTEX_LOCK_PI` and `FUTEX_UNLOCK_PI`) inside
/// `libswiftSynchronization.so`, which is not instrumented. When the kernel
/// hands the lock over, TSan sees no acquire, so it reports every value a
/// `Mutex` guards as raced as soon as two threads contend. A four-thread
/// counter behind a `Mutex` reproduces it
/// (`scripts/sanitizers/reproducers/mutex.swift`). TSan
/// intercepts `pthread_mutex_lock` and `pthread_mutex_unlock`, so with this
/// type it sees every hand-over.
///
/// Same API as the parts of `Synchronization.Mutex` this module uses.
///
/// The value lives behind a pointer rather than in a stored property: Swift's
/// exclusivity instrumentation reports an `inout` access to a zero-sized
/// property (`Mutex<Void>`) at the object's header, which then "races" with
/// every read of the header. TSan still sees every load and store of a value
/// through the pointer.
// @unchecked Sendable: `value` is read and written only between
// `pthread_mutex_lock` and `pthread_mutex_unlock` of `mutex`, in `withLock`.
final class Mutex<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    init(_ initialValue: consuming sending Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        value = .allocate(capacity: 1)
        value.initialize(to: initialValue)
    }

    deinit {
        value.deinitialize(count: 1)
        value.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<Result, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E) -> sending Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}
#endif
