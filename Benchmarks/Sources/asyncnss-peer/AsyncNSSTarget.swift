import AsyncNSS
import PeerKit

/// A load client made of AsyncNSS client connections.
struct AsyncNSSTarget: LoadTarget {
    let host: String
    let port: Int
    let configuration: TLSConfiguration

    func connect() async throws -> AsyncNSSConnection {
        AsyncNSSConnection(connection: try await TLSConnection.connect(host: host, port: port, configuration: configuration))
    }

    func bulkEcho(totalBytes: Int, chunkSize: Int) async throws {
        let connection = try await TLSConnection.connect(host: host, port: port, configuration: configuration)
        try await connection.executeThenClose { connection in
            // Both directions on the connection's loop, as ThreadingModel
            // recommends: their reads and writes cross no thread.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask(executorPreference: connection.executor) {
                    let chunk = [UInt8](repeating: 0x62, count: chunkSize)
                    var sent = 0
                    while sent < totalBytes {
                        let size = min(chunkSize, totalBytes - sent)
                        try await connection.write(size == chunkSize ? chunk : Array(chunk[0..<size]))
                        sent += size
                    }
                }
                group.addTask(executorPreference: connection.executor) {
                    try await AsyncNSSConnection.receive(totalBytes, from: connection)
                }
                try await group.waitForAll()
            }
        }
    }
}

/// One AsyncNSS client connection of a load.
struct AsyncNSSConnection: LoadConnection {
    let connection: TLSConnection

    func exchange(_ message: [UInt8], expecting: Int) async throws {
        // On the connection's loop: the write and the reads cross no thread.
        try await withTaskExecutorPreference(connection.executor) {
            try await connection.write(message)
            try await Self.receive(expecting, from: connection)
        }
    }

    func close() async { await connection.close() }

    /// Reads until `count` bytes have arrived.
    static func receive(_ count: Int, from connection: TLSConnection) async throws {
        var received = 0
        while received < count {
            guard let chunk = try await connection.receive(maxBytes: 64 * 1024) else {
                throw PeerError(message: "the server closed after \(received) of \(count) bytes")
            }
            received += chunk.count
        }
    }
}
