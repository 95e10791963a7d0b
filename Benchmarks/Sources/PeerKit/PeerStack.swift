/// A TLS stack under comparison: how to serve and how to make a load client.
/// Each peer executable implements this once; ``PeerCommand`` does the rest.
public protocol PeerStack {
    associatedtype Target: LoadTarget
    /// The executable's name, for help and messages.
    static var name: String { get }
    /// Serves until the process is killed. Prints
    /// `NAME: listening on HOST:PORT` on standard output once bound.
    static func serve(_ options: ServerOptions) async throws
    /// A load client for the server that `options` names.
    static func makeTarget(_ options: ClientOptions) async throws -> Target
}
