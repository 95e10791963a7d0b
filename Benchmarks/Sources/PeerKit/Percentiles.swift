/// Percentiles of a set of samples, nearest-rank.
public struct Percentiles: Sendable {
    private let sorted: [Double]

    public init(_ samples: [Double]) {
        sorted = samples.sorted()
    }

    public var count: Int { sorted.count }

    /// The nearest-rank `p`-th percentile (`p` in 0...100); 0 without samples.
    public func value(_ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}
