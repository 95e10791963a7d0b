@testable import AsyncNSS

/// What the `PollRegistry` suites share: a registry with `Int` sockets and
/// waiters named by a `String`, wait IDs from numbers, registration by name,
/// and resumed waits as sorted `name=outcome` strings.
protocol PollRegistryTesting {}

extension PollRegistryTesting {
    typealias Registry = PollRegistry<Int, String>

    func id(_ raw: UInt64) -> PollWaitID { PollWaitID(raw: raw) }

    /// For the random sequences: half the time an ID allocated earlier and
    /// not registered yet (maybe cancelled early), else a fresh one.
    func nextWaitID(
        reusing unregistered: inout [PollWaitID],
        counter: inout UInt64,
        using random: inout UnitSeededGenerator
    ) -> PollWaitID {
        if !unregistered.isEmpty, Bool.random(using: &random) {
            return unregistered.remove(at: Int.random(in: 0..<unregistered.count, using: &random))
        }
        counter += 1
        return PollWaitID(raw: counter)
    }

    @discardableResult
    func register(
        _ registry: inout Registry, _ raw: UInt64, socket: Int, _ interest: PollInterest = .read,
        deadline: ContinuousClock.Instant? = nil, name: String
    ) -> Registry.RegisterAction {
        registry.register(id(raw), socket: socket, interest: interest, deadline: deadline, waiter: name)
    }

    func summary(_ resumed: [(String, PollOutcome)]) -> [String] {
        resumed.map { "\($0.0)=\($0.1)" }.sorted()
    }

    /// The waiter and outcome of a registration that ended at once, or nil.
    func immediateResume(_ action: Registry.RegisterAction) -> String? {
        if case .resume(let waiter, let outcome) = action { return "\(waiter)=\(outcome)" }
        return nil
    }
}
