import CoreMetrics

/// What a listener's connections, or a client's, report through swift-metrics.
/// The names, for a listener (a client's start with `asyncnss_client_`, and
/// count `connections_opened_total` instead of `connections_accepted_total`):
///
/// - `asyncnss_connections_accepted_total`, `asyncnss_connections_closed_total` (counters)
///   and `asyncnss_connections_active` (a meter), from accept to close;
/// - `asyncnss_handshakes_total` with `result` = `success`, or `failure` and a `reason`
///   (the NSS error name, or the error kind);
/// - `asyncnss_handshake_duration` (a timer) for successful initial handshakes;
/// - `asyncnss_rehandshakes_total` with `kind` = `renegotiation`,
///   `postHandshakeAuthentication` or `keyUpdate`;
/// - `asyncnss_bytes_received_total` and `asyncnss_bytes_sent_total` (application data).
final class ConnectionMetrics: Sendable {
    let accepted: Counter
    let closed: Counter
    let active: Meter
    let handshakeDuration: CoreMetrics.Timer
    let bytesReceived: Counter
    let bytesSent: Counter
    private let succeeded: Counter
    /// One counter per rehandshake kind, made once.
    private let rehandshakes: [HandshakeEvent.Kind: Counter]
    private let factory: any MetricsFactory
    /// `asyncnss_` for a listener, `asyncnss_client_` for clients.
    private let prefix: String

    init(factory: any MetricsFactory, role: TLSRole) {
        self.factory = factory
        let prefix = role == .server ? "asyncnss_" : "asyncnss_client_"
        self.prefix = prefix
        accepted = Counter(label: prefix + (role == .server ? "connections_accepted_total" : "connections_opened_total"), factory: factory)
        closed = Counter(label: prefix + "connections_closed_total", factory: factory)
        active = Meter(label: prefix + "connections_active", factory: factory)
        handshakeDuration = CoreMetrics.Timer(label: prefix + "handshake_duration", factory: factory)
        bytesReceived = Counter(label: prefix + "bytes_received_total", factory: factory)
        bytesSent = Counter(label: prefix + "bytes_sent_total", factory: factory)
        succeeded = Counter(label: prefix + "handshakes_total", dimensions: [("result", "success")], factory: factory)
        rehandshakes = Dictionary(uniqueKeysWithValues: [HandshakeEvent.Kind.renegotiation, .postHandshakeAuthentication, .keyUpdate].map { kind in
            (kind, Counter(label: prefix + "rehandshakes_total", dimensions: [("kind", kind.description)], factory: factory))
        })
    }

    func received(_ count: Int) { bytesReceived.increment(by: Int64(count)) }

    func sent(_ count: Int) { bytesSent.increment(by: Int64(count)) }

    /// A listener accepted a connection, or a client started one.
    func connectionStarted() {
        accepted.increment()
        active.increment()
    }

    func connectionEnded() {
        active.decrement()
        closed.increment()
    }

    func handshakeSucceeded(after duration: Duration) {
        succeeded.increment()
        let (seconds, attoseconds) = duration.components
        handshakeDuration.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    func handshakeFailed(_ error: any Error) {
        let reason = (error as? TLSError).map { $0.nssName ?? $0.kind.description } ?? "\(type(of: error))"
        Counter(label: prefix + "handshakes_total", dimensions: [("result", "failure"), ("reason", reason)], factory: factory).increment()
    }

    func rehandshake(_ kind: HandshakeEvent.Kind) {
        (rehandshakes[kind] ?? Counter(label: prefix + "rehandshakes_total", dimensions: [("kind", kind.description)], factory: factory)).increment()
    }
}
