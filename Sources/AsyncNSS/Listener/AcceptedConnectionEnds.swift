/// What a listener does when one of its accepted connections ends: counts it
/// out of the metrics, gives its slot back to the limiter and stops tracking
/// it for graceful shutdown.
final class AcceptedConnectionEnds: ConnectionEndObserver {
    let metrics: ConnectionMetrics
    let limiter: ConnectionLimiter
    let live: LiveConnections

    init(metrics: ConnectionMetrics, limiter: ConnectionLimiter, live: LiveConnections) {
        self.metrics = metrics
        self.limiter = limiter
        self.live = live
    }

    func connectionEnded(_ callbacks: ConnectionCallbacks) {
        metrics.connectionEnded()
        limiter.release()
        live.remove(callbacks)
    }
}
