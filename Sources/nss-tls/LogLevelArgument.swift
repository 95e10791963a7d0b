import ArgumentParser
import Logging

/// A `--log-level` value: one of swift-log's levels, `trace` to `critical`.
struct LogLevelArgument: ExpressibleByArgument, Sendable {
    let level: Logger.Level

    init?(argument: String) {
        guard let level = Logger.Level(rawValue: argument.lowercased()) else { return nil }
        self.level = level
    }

    static var allValueStrings: [String] { Logger.Level.allCases.map(\.rawValue) }
}
