import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The poll threads: one or more *hot* ``PollLoop``s that tasks register on,
/// and one *cold* loop that holds the waits that stayed pending.
///
/// `PR_Poll` costs O(n) per call and a loop calls it on every wake-up, so a
/// loop that holds 10,000 idle sockets and is woken for every round trip of a
/// few active ones scans all 10,000 each time. Here a read or write wait
/// still pending after ``PollLoop/defaultDemotionDelay`` moves from its hot
/// loop to the cold loop, in batches (at most one per delay). A busy hot
/// loop moves waits from ``PollLoop/minimumDemotionAge`` on, once its polls
/// have scanned as many entries as the batch costs the cold loop. The hot
/// `PR_Poll` then scans only recently active sockets; the cold one scans the
/// idle ones, but is woken only when one of them becomes ready, one of its
/// deadlines passes, or a batch arrives. When a cold wait ends, its task's
/// next wait registers on the hot loop again.
///
/// The layout, from ``NSSRuntime/Options/pollThreads`` (`threads` here):
/// - 1: a single loop, no cold loop (every wait stays where it registered);
/// - k ≥ 2 (the default is one hot loop per core, plus the cold one): k − 1
///   hot loops, sockets spread over them round robin, and one cold loop
///   shared by them all.
///
/// A socket is bound to one hot loop for its whole life (``SocketHandle``
/// picks it once), so its waits, interruptions and quiesce always meet the
/// same registries, and its connection runs on that loop. Wait IDs come from
/// one counter for all loops.
final class PollGroup: Sendable {
    /// The loops that tasks register on: the hot loops, or the only loop.
    let loops: [PollLoop]
    /// The loop that demoted waits move to, if there is one.
    let coldLoop: PollLoop?
    private let next = Atomic<Int>(0)

    /// The number of poll threads used when ``NSSRuntime/Options/pollThreads``
    /// is 0: a hot loop per core, since the hot loops run the connections'
    /// cryptography, and one cold loop.
    static var automaticThreadCount: Int { coreCount + 1 }

    /// The cores this process can keep busy (``UsableCores``).
    static var coreCount: Int { UsableCores.count() }

    init(threads: Int, demotionDelay: Duration = PollLoop.defaultDemotionDelay) throws {
        let ids = PollWaitIDSource()
        let count = max(1, threads)
        var cold: PollLoop? = nil
        var loops: [PollLoop] = []
        do {
            if count == 1 {
                loops.append(try PollLoop(name: "nss-poll", ids: ids))
            } else {
                cold = try PollLoop(name: "nss-poll-cold", ids: ids)
                for index in 0..<(count - 1) {
                    loops.append(try PollLoop(
                        name: count == 2 ? "nss-poll-hot" : "nss-poll-hot-\(index)",
                        ids: ids, cold: cold, demotionDelay: demotionDelay
                    ))
                }
            }
        } catch {
            for loop in loops { loop.shutdown() }
            cold?.shutdown()
            throw error
        }
        self.loops = loops
        self.coldLoop = cold
    }

    /// The loop for a new socket.
    func assign() -> PollLoop {
        if loops.count == 1 { return loops[0] }
        let turn = next.wrappingAdd(1, ordering: .relaxed).oldValue
        return loops[Int(UInt(bitPattern: turn) % UInt(loops.count))]
    }

    /// Stops every loop; see ``PollLoop/shutdown()``. The hot loops stop
    /// first, so no demotion arrives at the cold loop after it has stopped
    /// (one that did would be refused and resumed with `shutDown` anyway).
    func shutdown() {
        for loop in loops { loop.shutdown() }
        coldLoop?.shutdown()
    }

    /// Registered waits over all loops, for tests and diagnostics.
    var waitCount: Int { loops.reduce(coldLoop?.waitCount ?? 0) { $0 + $1.waitCount } }

    /// Early endings and announced wait IDs the loops remember, for tests:
    /// it comes back to zero once no wait is in progress.
    var rememberedCount: Int { loops.reduce(coldLoop?.rememberedCount ?? 0) { $0 + $1.rememberedCount } }
}

/// Wait IDs unique across the loops of a ``PollGroup``.
final class PollWaitIDSource: Sendable {
    private let next = Atomic<UInt64>(0)

    func make() -> PollWaitID {
        PollWaitID(raw: next.wrappingAdd(1, ordering: .relaxed).newValue)
    }
}
