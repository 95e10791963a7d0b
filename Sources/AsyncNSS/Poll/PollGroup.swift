import Synchronization

/// Several poll threads, each a ``PollLoop`` with its own registry and
/// `PR_Poll` array: `PR_Poll` costs O(n) per call, so n sockets split over k
/// threads cost each thread O(n/k) per wake-up.
///
/// A socket is bound to one loop for its whole life (``SocketHandle`` picks
/// it once, round robin), so its waits, interruptions and quiesce always meet
/// the same registry. Wait IDs come from one counter for all loops.
final class PollGroup: Sendable {
    let loops: [PollLoop]
    private let next = Atomic<Int>(0)

    /// The number of poll threads used when ``NSSRuntime/Options/pollThreads`` is 0.
    static var automaticThreadCount: Int { 1 }

    init(threads: Int) throws {
        let ids = PollWaitIDSource()
        let count = max(1, threads)
        var loops: [PollLoop] = []
        do {
            for index in 0..<count {
                loops.append(try PollLoop(name: count == 1 ? "nss-poll" : "nss-poll-\(index)", ids: ids))
            }
        } catch {
            for loop in loops { loop.shutdown() }
            throw error
        }
        self.loops = loops
    }

    /// The loop for a new socket.
    func assign() -> PollLoop {
        if loops.count == 1 { return loops[0] }
        let turn = next.wrappingAdd(1, ordering: .relaxed).oldValue
        return loops[Int(UInt(bitPattern: turn) % UInt(loops.count))]
    }

    /// Stops every loop; see ``PollLoop/shutdown()``.
    func shutdown() {
        for loop in loops { loop.shutdown() }
    }

    /// Registered waits over all loops, for tests and diagnostics.
    var waitCount: Int { loops.reduce(0) { $0 + $1.waitCount } }
}

/// Wait IDs unique across the loops of a ``PollGroup``.
final class PollWaitIDSource: Sendable {
    private let next = Atomic<UInt64>(0)

    func make() -> PollWaitID {
        PollWaitID(raw: next.wrappingAdd(1, ordering: .relaxed).newValue)
    }
}
