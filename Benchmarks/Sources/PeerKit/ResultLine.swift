import Foundation

/// Prints a workload's result as one JSON object on standard output, which
/// the comparison runner parses.
public enum ResultLine {
    public static func print(_ fields: [String: any Sendable]) {
        let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data("{}".utf8)
        Swift.print(String(decoding: data, as: UTF8.self))
    }
}
