/// Told once when a connection ends, however it ends (closed, dropped, or
/// failed before its handshake completed).
///
/// A listener keeps one observer for all its connections; a closure per
/// connection through ``ConnectionCallbacks/whenEnded(_:)`` would cost each
/// connection its own allocations.
protocol ConnectionEndObserver: AnyObject, Sendable {
    func connectionEnded(_ callbacks: ConnectionCallbacks)
}
