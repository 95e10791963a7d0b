/// A poll loop is the executor of the connections it polls: their actors run
/// on its thread (``SerialExecutor``), and so may whole tasks that prefer it
/// (``TaskExecutor``). A wait that a poll ends then continues on the thread
/// that polled it, with no crossing to Swift's cooperative pool and back.
///
/// Code that blocks a job stalls every connection of the loop. Blocking
/// calls go to the ``BlockingPool``.
extension PollLoop: SerialExecutor, TaskExecutor {
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        switch jobs.add(job) {
        case .queued(let wake):
            if wake { self.wake() }
        case .afterStop:
            jobs.runAfterStop(job) { [self] job in runJob(job) }
        }
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }

    func isIsolatingCurrentContext() -> Bool? {
        jobs.isRunnerThread
    }

    func checkIsolated() {
        precondition(jobs.isRunnerThread, "not on the poll loop's thread")
    }

    /// Runs `job` isolated to this loop, as both its serial and task executor.
    func runJob(_ job: UnownedJob) {
        job.runSynchronously(isolatedTo: asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
    }
}
