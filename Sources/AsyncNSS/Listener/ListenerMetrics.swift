import CoreMetrics

/// What a listener reports through swift-metrics. The names:
///
/// - `asyncnss_connections_accepted_total`, `asyncnss_connections_closed_total` (counters)
///   and `asyncnss_connections_active` (a meter), from accept to close;
/// - `asyncnss_handshakes_total` with `result` = `success`, or `failure` and a `reason`
///   (the NSS error name, or the error kind);
/// - `asyncnss_handshake_duration` (a timer) for successful initial handshakes;
/// - `asyncnss_rehandshakes_total` with `kind` = `renegotiation`,
///   `postHandshakeAuthentication` or `keyUpdate`;
/// - `asyncnss_bytes_received_total` and `asyncnss_bytes_sent_total` (application data).
final class ListenerMetrics: Sendable {
    let accepted: Counter
    let closed: Counter
    let active: Meter
    let handshakeDuration: CoreMetrics.Timer
    let bytesReceived: Counter
    let bytesSent: Counter
    private let succeeded: Counter
    private let factory: any MetricsFactory

    init(factory: any MetricsFactory) {
        self.factory = factory
        accepted = Counter(label: "asyncnss_connections_accepted_total", factory: factory)
        closed = Counter(label: "asyncnss_connections_closed_total", factory: factory)
        active = Meter(label: "asyncnss_connections_active", factory: factory)
        handshakeDuration = CoreMetrics.Timer(label: "asyncnss_handshake_duration", factory: factory)
        bytesReceived = Counter(label: "asyncnss_bytes_received_total", factory: factory)
        bytesSent = Counter(label: "asyncnss_bytes_sent_total", factory: factory)
        succeeded = Counter(label: "asyncnss_handshakes_total", dimensions: [("result", "success")], factory: factory)
    }

    func received(_ count: Int) { bytesReceived.increment(by: Int64(count)) }

    func sent(_ count: Int) { bytesSent.increment(by: Int64(count)) }

    func connectionAccepted() {
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
        Counter(label: "asyncnss_handshakes_total", dimensions: [("result", "failure"), ("reason", reason)], factory: factory).increment()
    }

    func rehandshake(_ kind: HandshakeEvent.Kind) {
        Counter(label: "asyncnss_rehandshakes_total", dimensions: [("kind", kind.description)], factory: factory).increment()
    }
}
