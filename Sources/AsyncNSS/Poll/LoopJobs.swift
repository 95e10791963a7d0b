import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The jobs a ``PollLoop`` runs on its thread between two polls, as the
/// executor of the connections it polls.
///
/// A job enqueued from another thread asks for a wakeup, at most one until
/// the loop next takes the queue; one enqueued on the loop's own thread (a
/// wait that a poll just resumed, say) does not: the loop runs it before it
/// polls again. Once the loop has stopped, jobs run in order on a serial
/// dispatch queue, so that an actor whose loop is gone still answers.
final class LoopJobs: Sendable {
    private struct State {
        var jobs: [UnownedJob] = []
        var stopped = false
    }

    private let state = Mutex(State())
    private let wakeRequested = Atomic<Bool>(false)
    private let wakeupCount = Atomic<Int>(0)
    private let addedCount = Atomic<Int>(0)
    /// The thread that runs the jobs now: the loop's, then, once it stopped,
    /// whichever thread the queue below uses for the job at hand.
    private let runner = Atomic<UInt>(0)
    private let afterStop = DispatchQueue(label: "asyncnss.loop-jobs.after-stop")

    /// What ``add(_:)`` asks of the caller.
    enum Added {
        /// Queued; wake the loop if `wake`.
        case queued(wake: Bool)
        /// The loop has stopped: the job runs on the queue after it.
        case afterStop
    }

    private static var currentThread: UInt {
        #if canImport(Darwin)
        UInt(bitPattern: pthread_self())
        #else
        UInt(pthread_self())
        #endif
    }

    /// Called first on the loop's thread.
    func attachLoopThread() {
        runner.store(Self.currentThread, ordering: .releasing)
    }

    /// Whether the caller runs on the thread that runs these jobs.
    var isRunnerThread: Bool {
        runner.load(ordering: .acquiring) == Self.currentThread
    }

    func add(_ job: UnownedJob) -> Added {
        let fromRunner = isRunnerThread
        let stopped = state.withLock { state -> Bool in
            if state.stopped { return true }
            state.jobs.append(job)
            return false
        }
        if stopped { return .afterStop }
        addedCount.add(1, ordering: .relaxed)
        if fromRunner { return .queued(wake: false) }
        // The first job since the loop last took the queue wakes it.
        let wake = !wakeRequested.exchange(true, ordering: .acquiringAndReleasing)
        if wake { wakeupCount.add(1, ordering: .relaxed) }
        return .queued(wake: wake)
    }

    /// How many times a job from another thread woke the loop; each is a
    /// thread crossing. For tests and diagnostics.
    var wakeups: Int { wakeupCount.load(ordering: .relaxed) }

    /// How many jobs were queued, from any thread: each is an executor
    /// switch or a resumed wait. For tests and diagnostics.
    var added: Int { addedCount.load(ordering: .relaxed) }

    /// Whether a job waits; the loop then polls without sleeping.
    var hasJobs: Bool { state.withLock { !$0.jobs.isEmpty } }

    /// Moves every job queued so far, in order, into `batch`, which must be
    /// empty; its storage becomes the queue's, so that neither side
    /// allocates once both have grown. Jobs queued meanwhile from another
    /// thread wake the loop again; the loop's own run in this turn or the next.
    func take(into batch: inout [UnownedJob]) {
        wakeRequested.store(false, ordering: .releasing)
        state.withLock { state in swap(&batch, &state.jobs) }
    }

    /// Stops queueing for the loop, which is about to end. Jobs still
    /// queued, and every later one, run on the queue after it, in order.
    func stop(run: @escaping @Sendable (UnownedJob) -> Void) {
        let left = state.withLock { state -> [UnownedJob] in
            state.stopped = true
            defer { state.jobs = [] }
            return state.jobs
        }
        for job in left { runAfterStop(job, run: run) }
    }

    func runAfterStop(_ job: UnownedJob, run: @escaping @Sendable (UnownedJob) -> Void) {
        afterStop.async { [self] in
            runner.store(Self.currentThread, ordering: .releasing)
            run(job)
        }
    }
}
