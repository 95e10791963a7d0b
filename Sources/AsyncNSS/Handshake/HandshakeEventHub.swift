import Synchronization

/// Fans handshake events out to every ``TLSConnection/handshakeEvents`` subscriber.
///
/// A subscriber first receives the events that already happened (the last
/// ``historyLimit`` of them), then live ones; its stream ends when the
/// connection closes. Publishing never blocks, so NSS callbacks may call it.
final class HandshakeEventHub: Sendable {
    static let historyLimit = 32

    private struct State {
        /// The most recent event, boxed: the connection shares the box of
        /// its initial handshake (``TLSConnection``), and a connection that
        /// never rehandshakes allocates no history array.
        var latest: HandshakeEventBox?
        /// The events before `latest`, oldest first, at most `historyLimit - 1`.
        var earlier: [HandshakeEvent] = []
        var count = 0
        var subscribers: [Int: AsyncStream<HandshakeEvent>.Continuation] = [:]
        var nextSubscriber = 0
        var finished = false
    }

    private let state = Mutex(State())

    /// The most recent event, if any handshake completed.
    var latest: HandshakeEvent? { state.withLock { $0.latest?.event } }

    /// The box of the most recent event, to share rather than copy.
    var latestBox: HandshakeEventBox? { state.withLock { $0.latest } }

    var handshakeCount: Int { state.withLock { $0.count } }

    /// Records a completed handshake and hands it to every subscriber. With no
    /// `kind`, the first event is the initial handshake and later ones are
    /// renegotiations.
    @discardableResult
    func publish(_ info: TLSConnectionInfo, kind: HandshakeEvent.Kind? = nil) -> HandshakeEvent {
        let (event, subscribers) = state.withLock { state in
            state.count += 1
            let event = HandshakeEvent(kind: kind ?? (state.count == 1 ? .initial : .renegotiation), sequenceNumber: state.count, info: info)
            if let previous = state.latest {
                state.earlier.append(previous.event)
                if state.earlier.count >= Self.historyLimit { state.earlier.removeFirst() }
            }
            state.latest = HandshakeEventBox(event)
            return (event, Array(state.subscribers.values))
        }
        for subscriber in subscribers { subscriber.yield(event) }
        return event
    }

    /// The first event after sequence number `sequence` whose kind is `kind`,
    /// if it is still in the history.
    func firstEvent(after sequence: Int, kind: HandshakeEvent.Kind) -> HandshakeEvent? {
        state.withLock { state in
            let matches = { (event: HandshakeEvent) in event.sequenceNumber > sequence && event.kind == kind }
            if let event = state.earlier.first(where: matches) { return event }
            return state.latest.map(\.event).flatMap { matches($0) ? $0 : nil }
        }
    }

    func subscribe() -> AsyncStream<HandshakeEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: HandshakeEvent.self, bufferingPolicy: .bufferingNewest(Self.historyLimit))
        // History is yielded under the lock so a concurrent publish cannot
        // overtake it; yielding never blocks.
        let (finished, id) = state.withLock { state in
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            if !state.finished { state.subscribers[id] = continuation }
            for event in state.earlier { continuation.yield(event) }
            if let latest = state.latest { continuation.yield(latest.event) }
            return (state.finished, id)
        }
        if finished {
            continuation.finish()
        } else {
            continuation.onTermination = { [weak self] _ in
                self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
            }
        }
        return stream
    }

    /// Ends every subscriber's stream.
    func finish() {
        let subscribers = state.withLock { state in
            state.finished = true
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }
}

/// A handshake event in a box of its own, which the hub and the connection
/// share.
final class HandshakeEventBox: Sendable {
    let event: HandshakeEvent
    init(_ event: HandshakeEvent) { self.event = event }
}
