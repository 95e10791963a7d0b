import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Writes the connection's bytes to standard output on a thread of its own,
/// so that a slow reader of our output blocks that thread, never one of the
/// cooperative pool. Each ``write(_:)`` returns once its bytes are written,
/// which keeps the connection's backpressure.
final class StandardOutputWriter: Sendable {
    private struct State {
        var pending: [(bytes: [UInt8], done: CheckedContinuation<Void, any Error>)] = []
        var finished = false
    }

    private let state = Mutex(State())
    private let ready = DispatchSemaphore(value: 0)

    init() {
        DetachedThread.start { [self] in self.run() }
    }

    /// Writes every byte of `bytes` to standard output.
    func write(_ bytes: [UInt8]) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            let accepted = state.withLock { state -> Bool in
                guard !state.finished else { return false }
                state.pending.append((bytes, done))
                return true
            }
            if accepted {
                ready.signal()
            } else {
                done.resume(throwing: StandardStreamError(operation: "writing to standard output", code: EBADF))
            }
        }
    }

    /// Lets the thread end once the queued writes are done.
    func finish() {
        state.withLock { $0.finished = true }
        ready.signal()
    }

    private func run() {
        while true {
            ready.wait()
            let next = state.withLock { state -> (bytes: [UInt8], done: CheckedContinuation<Void, any Error>)? in
                state.pending.isEmpty ? nil : state.pending.removeFirst()
            }
            guard let next else {
                if state.withLock({ $0.finished }) { return }
                continue
            }
            do {
                try StandardOutput.write(next.bytes)
                next.done.resume()
            } catch {
                next.done.resume(throwing: error)
            }
        }
    }
}
