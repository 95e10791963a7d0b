import ArgumentParser
import AsyncNSS

/// A `--tls-min`/`--tls-max` value: `1.2`, `1.3`, `tls1.2`, `TLSv1.3`.
struct TLSVersionArgument: ExpressibleByArgument, Sendable, CustomStringConvertible {
    let version: TLSVersion

    init(_ version: TLSVersion) { self.version = version }

    init?(argument: String) {
        guard let version = TLSVersion(argument) else { return nil }
        self.version = version
    }

    var description: String { version.description }

    var defaultValueDescription: String {
        version == .tls12 ? "1.2" : version == .tls13 ? "1.3" : version.description
    }

    static var allValueStrings: [String] { ["1.2", "1.3"] }
}
