import ArgumentParser

/// The `nss-tls` command: a TLS server and client built on AsyncNSS.
@main
struct NSSTLS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nss-tls",
        abstract: "A TLS server and client on Mozilla NSS, for trying out and testing AsyncNSS.",
        subcommands: [ServeCommand.self, ConnectCommand.self]
    )

    /// ArgumentParser's `main`, which also writes the queued log lines
    /// before the process exits (see ``CommandLogging/flush()``).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            CommandLogging.flush()
        } catch {
            CommandLogging.flush()
            exit(withError: error)
        }
    }
}
