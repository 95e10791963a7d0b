import Foundation

/// NSS's `strsclnt` as a resumption client.
enum Strsclnt {
    /// Opens `connections` connections to 127.0.0.1:`port` with
    /// `version` ("tls1.2" or "tls1.3") and returns how many resumed, by
    /// strsclnt's own count ("cache hits"), and what it printed. No
    /// verification (the point is resumption); `tickets` turns session
    /// tickets on, which TLS 1.3 resumption needs.
    static func resumed(port: Int, version: String, connections: Int, threads: Int = 4, tickets: Bool = true) async throws -> (hits: Int, output: ExternalTool.Output) {
        let database = try TemporaryDirectory()
        _ = try await ExternalTool.run("certutil", ["-N", "-d", "sql:" + database.path, "--empty-password"])
        let output = try await ExternalTool.run("strsclnt", [
            "-q", "-D", "-o", "-o", "-c", "\(connections)", "-t", "\(threads)", "-p", "\(port)", "-d", "sql:" + database.path,
            "-V", "\(version):\(version)",
        ] + (tickets ? ["-u"] : []) + ["127.0.0.1"], timeout: 90)
        let hits = (output.stdout + output.stderr).split(separator: "\n").compactMap { line -> Int? in
            guard let range = line.range(of: " cache hits;") else { return nil }
            return Int(line[..<range.lowerBound].split(separator: " ").last ?? "")
        }.max() ?? 0
        return (hits, output)
    }
}
