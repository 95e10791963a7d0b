import Logging
import Synchronization

/// The `Logger` of one connection: the application's logger with metadata
/// that names the connection, so every line about it can be found together.
///
/// Metadata keys: `connection` (a number unique in the process), `peer`, and
/// once the handshake is done `version`, `cipher`, `sni`, `alpn` and
/// `resumed`. Levels: handshakes at debug, failures at info. Never key
/// material: only what the handshake negotiated.
enum ConnectionLogging {
    private static let lastID = Atomic<UInt64>(0)

    /// A logger that drops everything, for clients whose configuration has none.
    static let disabled = Logger(label: "AsyncNSS", factory: { _ in SwiftLogNoOpLogHandler() })

    /// The next connection number.
    static func nextNumber() -> UInt64 { lastID.add(1, ordering: .relaxed).newValue }

    /// `logger` with the connection's number and its peer.
    ///
    /// Connections make it on first use (see ``ConnectionCallbacks/logger``):
    /// a handler such as swift-log's `StreamLogHandler` renders all of its
    /// metadata again on every key set, which cost more per accepted
    /// connection than anything else the framework does in Swift.
    static func logger(_ logger: Logger, number: UInt64, peer: String) -> Logger {
        var result = logger
        result[metadataKey: "connection"] = "\(number)"
        result[metadataKey: "peer"] = "\(peer)"
        return result
    }

    /// `logger` with what a handshake negotiated.
    static func negotiated(_ logger: Logger, _ info: TLSConnectionInfo) -> Logger {
        var result = logger
        result[metadataKey: "version"] = "\(info.protocolVersion)"
        result[metadataKey: "cipher"] = "\(info.cipherSuite)"
        result[metadataKey: "sni"] = "\(info.serverName ?? "-")"
        result[metadataKey: "alpn"] = "\(info.applicationProtocol ?? "-")"
        result[metadataKey: "resumed"] = "\(info.resumed)"
        return result
    }
}
