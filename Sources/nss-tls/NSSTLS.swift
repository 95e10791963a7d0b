import ArgumentParser

/// The `nss-tls` command: a TLS test server and client built on AsyncNSS.
@main
struct NSSTLS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nss-tls",
        abstract: "A TLS server and client on Mozilla NSS, for trying out and testing AsyncNSS.",
        subcommands: [ServeCommand.self, ConnectCommand.self]
    )
}
