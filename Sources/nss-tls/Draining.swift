import Synchronization

/// Whether `serve` is draining: told to stop, it still serves for
/// `--drain-delay` seconds while `GET /health` answers `503`, so that a load
/// balancer's health check takes it out of rotation before it stops
/// accepting.
final class Draining: Sendable {
    private let flag = Atomic<Bool>(false)

    var isOn: Bool { flag.load(ordering: .relaxed) }

    func start() { flag.store(true, ordering: .relaxed) }
}
