/// One open echo connection of a load client.
public protocol LoadConnection: Sendable {
    /// Writes `message` and returns once `expecting` bytes have come back
    /// (the echo of `message`, or an HTTP response of known length).
    func exchange(_ message: [UInt8], expecting: Int) async throws
    /// Closes the connection (with close_notify where the stack sends one).
    func close() async
}

/// What each peer implements so that the workloads in ``Workloads`` can drive
/// it: connecting to an echo server and a bulk echo transfer.
public protocol LoadTarget: Sendable {
    associatedtype Connection: LoadConnection
    /// Opens a TLS connection to the echo server and completes the handshake.
    func connect() async throws -> Connection
    /// Sends `totalBytes` in writes of `chunkSize` over one connection while
    /// reading the echo, and returns once every byte has come back.
    func bulkEcho(totalBytes: Int, chunkSize: Int) async throws
}
