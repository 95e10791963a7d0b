import ArgumentParser

/// A `--sni` value, `NAME=CERT.pem,KEY.pem`: the identity `serve` presents to
/// clients that ask for NAME.
struct ServerNameArgument: ExpressibleByArgument, Sendable {
    let name: String
    let certificateFile: String
    let keyFile: String

    init?(argument: String) {
        guard let equals = argument.firstIndex(of: "=") else { return nil }
        let name = String(argument[..<equals])
        let files = argument[argument.index(after: equals)...].split(separator: ",", omittingEmptySubsequences: false)
        guard !name.isEmpty, files.count == 2, !files[0].isEmpty, !files[1].isEmpty else { return nil }
        self.name = name
        self.certificateFile = String(files[0])
        self.keyFile = String(files[1])
    }
}
