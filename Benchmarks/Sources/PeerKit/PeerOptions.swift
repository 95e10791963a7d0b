public import ArgumentParser

/// Options of every peer's `server` command.
public struct ServerOptions: ParsableArguments {
    @Option(help: "The address to listen on.") public var host = "127.0.0.1"
    @Option(help: "The port to listen on; 0 picks a free one.") public var port = 8443
    @Option(help: "A PEM certificate chain, leaf first.") public var cert: String
    @Option(help: "The PKCS#8 PEM private key of --cert.") public var key: String
    @Option(help: "echo: echo every byte; http: answer each HTTP/1.1 request with a fixed hello page.") public var mode = ServerMode.echo
    public init() {}
}

/// What a peer's server does with the bytes it receives.
public enum ServerMode: String, ExpressibleByArgument, Sendable {
    case echo, http
}

/// Options shared by every peer's client commands.
public struct ClientOptions: ParsableArguments {
    @Option(help: "The server's address.") public var host = "127.0.0.1"
    @Option(help: "The server's port.") public var port: Int
    @Option(help: "Trust only the certificates of this PEM file (the server's self-signed certificate).") public var ca: String
    @Option(name: .customLong("server-name"), help: "The name checked against the certificate and sent as SNI.") public var serverName = "localhost"
    public init() {}
}
