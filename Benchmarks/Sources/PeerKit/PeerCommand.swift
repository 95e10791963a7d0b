public import ArgumentParser
import Foundation

/// The command line every peer shares: `server`, `bulk`, `latency`, `hold`, `http`.
public struct PeerCommand<Stack: PeerStack>: AsyncParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: Stack.name,
            abstract: "TLS echo and HTTP-hello server and load clients, for the AsyncNSS comparison.",
            subcommands: [
                ServeCommand<Stack>.self, BulkCommand<Stack>.self, LatencyCommand<Stack>.self,
                HoldCommand<Stack>.self, HTTPCommand<Stack>.self,
            ]
        )
    }
    public init() {}
}

/// `server`: echo or HTTP-hello TLS server.
public struct ServeCommand<Stack: PeerStack>: AsyncParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "server", abstract: "Serve TLS: echo, or HTTP hello with --mode http.")
    }
    @OptionGroup var options: ServerOptions
    public init() {}
    public func run() async throws { try await Stack.serve(options) }
}

/// `bulk`: echo a number of bytes each way over one connection.
public struct BulkCommand<Stack: PeerStack>: AsyncParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "bulk", abstract: "Echo --bytes each way over one connection; print MiB/s as JSON.")
    }
    @OptionGroup var client: ClientOptions
    @Option(help: "Bytes to send (and receive back).") var bytes = 1 << 30
    @Option(help: "Bytes per write.") var chunk = 16 * 1024
    public init() {}
    public func run() async throws {
        try await Workloads.bulk(try await Stack.makeTarget(client), totalBytes: bytes, chunkSize: chunk)
    }
}

/// `latency`: echo round trips of active connections among idle ones.
public struct LatencyCommand<Stack: PeerStack>: AsyncParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "latency", abstract: "Round-trip percentiles of --active connections among --idle ones, as JSON.")
    }
    @OptionGroup var client: ClientOptions
    @Option(help: "Connections opened first and left silent.") var idle = 0
    @Option(help: "Connections that make round trips.") var active = 100
    @Option(help: "Round trips per active connection.") var rounds = 200
    @Option(help: "Bytes per round trip.") var message = 64
    @Option(name: .customLong("server-pid"), help: "Report this process's RSS before and after the idle connections.") var serverPID: Int32?
    public init() {}
    public func run() async throws {
        try await Workloads.latency(
            try await Stack.makeTarget(client), idle: idle, active: active, rounds: rounds,
            messageSize: message, serverPID: serverPID)
    }
}

/// `hold`: keep idle connections open and measure the server's CPU.
public struct HoldCommand<Stack: PeerStack>: AsyncParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "hold", abstract: "Hold idle connections; print the server's CPU use meanwhile as JSON.")
    }
    @OptionGroup var client: ClientOptions
    @Option(help: "Idle connections to hold.") var connections = 1000
    @Option(help: "How long to measure, in seconds.") var seconds = 10.0
    @Option(name: .customLong("server-pid"), help: "The server process to measure.") var serverPID: Int32
    public init() {}
    public func run() async throws {
        try await Workloads.hold(try await Stack.makeTarget(client), connections: connections, seconds: seconds, serverPID: serverPID)
    }
}

/// `http`: keep-alive HTTP requests against a server in `--mode http`.
public struct HTTPCommand<Stack: PeerStack>: AsyncParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "http", abstract: "Keep-alive HTTP requests to an HTTP-hello server; print requests/s as JSON.")
    }
    @OptionGroup var client: ClientOptions
    @Option(help: "Keep-alive connections.") var connections = 16
    @Option(help: "Requests per connection.") var requests = 1000
    public init() {}
    public func run() async throws {
        try await Workloads.http(try await Stack.makeTarget(client), connections: connections, requests: requests)
    }
}

/// Prints the line the runner waits for, and flushes it out of the buffer.
public func announceListening(_ name: String, _ address: String) {
    print("\(name): listening on \(address)")
    fflush(nil)
}

extension PeerCommand {
    /// Parses the command line and runs the chosen command, always the async way.
    public static func runMain() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
