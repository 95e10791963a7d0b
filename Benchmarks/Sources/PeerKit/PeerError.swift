/// A failure of a benchmark peer, with what went wrong.
public struct PeerError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
