/// An actor whose serial executor is a poll loop, for code that is not a
/// connection's but runs on a loop, such as a listener's accept loop.
///
/// A loop runs every job as its own serial executor (see
/// `PollLoop+Executor.swift`). So code isolated to an actor of the same loop
/// continues in place after each await, while plain `nonisolated async` code
/// leaves for the generic executor and comes back: a job each way. Isolated
/// to this actor, with `nonisolated(nonsending)` callees, a wait costs the one
/// job that resumes it.
actor LoopIsolation {
    nonisolated let loop: PollLoop

    nonisolated var unownedExecutor: UnownedSerialExecutor {
        loop.asUnownedSerialExecutor()
    }

    init(loop: PollLoop) {
        self.loop = loop
    }
}
