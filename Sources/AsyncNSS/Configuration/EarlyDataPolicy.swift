/// Whether a server accepts TLS 1.3 early data (0-RTT): a request that a
/// resuming client sends with its ClientHello, a round trip sooner.
///
/// Early data can be replayed: an attacker who recorded it can send it again.
/// NSS refuses a replay within the anti-replay window (its ClientHello's
/// binder in a Bloom filter) and any ticket used outside it, and a replay never
/// completes its handshake; but the application sees early bytes before the
/// handshake completes. Act on them only if acting twice does no harm (a GET),
/// or wait for ``TLSConnection/waitForHandshakeCompletion()`` first, after
/// which the bytes cannot have been replayed. ``TLSConnection/earlyDataByteCount``
/// says how many bytes of the stream came early.
public struct EarlyDataPolicy: Sendable, Hashable, CustomStringConvertible {
    /// The most early data a client may send, in bytes; 0 when off.
    public let maximumSize: Int
    /// How long NSS remembers a ClientHello to refuse its replay. After the
    /// process starts, early data is refused for one window: replays of
    /// ClientHellos seen before a restart are refused too.
    public let antiReplayWindow: Duration

    /// Early data is refused: every handshake takes its full round trip. The default.
    public static let off = EarlyDataPolicy(maximumSize: 0, antiReplayWindow: .zero)

    /// Accepts up to `maximumSize` bytes of early data on resumed TLS 1.3 sessions.
    ///
    /// - Parameters:
    ///   - maximumSize: The most early data a client may send; tickets carry it.
    ///   - antiReplayWindow: How long a ClientHello is remembered. Clients
    ///     whose clock runs more than half of it off are refused early data.
    public static func accept(maximumSize: Int = 16_384, antiReplayWindow: Duration = .seconds(10)) -> EarlyDataPolicy {
        EarlyDataPolicy(maximumSize: maximumSize, antiReplayWindow: antiReplayWindow)
    }

    /// Whether early data is accepted.
    public var isOn: Bool { maximumSize > 0 }

    public var description: String {
        isOn ? "accept(maximumSize: \(maximumSize), antiReplayWindow: \(antiReplayWindow))" : "off"
    }
}
