/// A `ContinuousClock.Instant` as the poll registry keeps it.
///
/// The standard library's instant is not frozen: outside its module every
/// copy, comparison, optional and sum of one goes through runtime metadata
/// and calls, and so does every struct, array and dictionary entry that holds
/// one. The registry handles a few per wait and per poll, in its heaps and
/// its registrations. This is the same point as a `Duration` from a fixed
/// origin, which is frozen: two words the compiler sees through.
struct PollInstant: Comparable, Hashable, Sendable {
    /// The time from ``origin`` to this instant.
    var sinceOrigin: Duration

    /// The clock reading all poll instants count from, taken once per process.
    static let origin = ContinuousClock.now

    init(_ instant: ContinuousClock.Instant) {
        sinceOrigin = Self.origin.duration(to: instant)
    }

    private init(sinceOrigin: Duration) {
        self.sinceOrigin = sinceOrigin
    }

    static func < (lhs: Self, rhs: Self) -> Bool { lhs.sinceOrigin < rhs.sinceOrigin }

    static func + (lhs: Self, rhs: Duration) -> Self { Self(sinceOrigin: lhs.sinceOrigin + rhs) }

    static func - (lhs: Self, rhs: Self) -> Duration { lhs.sinceOrigin - rhs.sinceOrigin }
}
