import Testing
@testable import AsyncNSS

@Suite("HandshakeEventHub", .timeLimit(.minutes(1)))
struct HandshakeEventHubTests {
    /// Connection info told apart by its cipher suite.
    func info(_ number: Int, version: TLSVersion = .tls12) -> TLSConnectionInfo {
        TLSConnectionInfo(
            protocolVersion: version,
            cipherSuite: "SUITE_\(number)",
            applicationProtocol: number.isMultiple(of: 2) ? "h2" : nil,
            serverName: "host\(number).example",
            resumed: number > 1,
            peerCertificates: []
        )
    }

    func collect(_ stream: AsyncStream<HandshakeEvent>) async -> [HandshakeEvent] {
        var events: [HandshakeEvent] = []
        for await event in stream { events.append(event) }
        return events
    }

    @Test("a new hub has no event")
    func empty() {
        let hub = HandshakeEventHub()
        #expect(hub.latest == nil)
        #expect(hub.handshakeCount == 0)
    }

    @Test("publish numbers events: the first is initial, later ones renegotiations")
    func publishNumbers() {
        let hub = HandshakeEventHub()
        let first = hub.publish(info(1, version: .tls13))
        #expect(first == HandshakeEvent(kind: .initial, sequenceNumber: 1, info: info(1, version: .tls13)))
        let second = hub.publish(info(2))
        #expect(second.kind == .renegotiation)
        #expect(second.sequenceNumber == 2)
        #expect(second.info == info(2))
        #expect(hub.publish(info(3)).sequenceNumber == 3)
        #expect(hub.latest?.sequenceNumber == 3)
        #expect(hub.latest?.info.cipherSuite == "SUITE_3")
        #expect(hub.handshakeCount == 3)
        #expect(HandshakeEvent.Kind.initial.description == "initial")
        #expect(HandshakeEvent.Kind.renegotiation.description == "renegotiation")
    }

    @Test("a late subscriber gets the history in order, then live events, until finish")
    func historyThenLive() async {
        let hub = HandshakeEventHub()
        hub.publish(info(1))
        hub.publish(info(2))
        let stream = hub.subscribe()
        hub.publish(info(3))
        hub.finish()
        let events = await collect(stream)
        #expect(events.map(\.sequenceNumber) == [1, 2, 3])
        #expect(events.map(\.kind) == [.initial, .renegotiation, .renegotiation])
        #expect(events.map(\.info) == [info(1), info(2), info(3)])
    }

    @Test("a live subscriber receives events as they are published")
    func liveEvents() async {
        let hub = HandshakeEventHub()
        let stream = hub.subscribe()
        var iterator = stream.makeAsyncIterator()
        hub.publish(info(1))
        let first = await iterator.next()
        #expect(first?.kind == .initial)
        #expect(first?.sequenceNumber == 1)
        hub.publish(info(2))
        let second = await iterator.next()
        #expect(second?.kind == .renegotiation)
        #expect(second?.info == info(2))
        hub.finish()
        let end = await iterator.next()
        #expect(end == nil)
    }

    @Test("finish ends every subscriber's stream")
    func finishEndsAll() async {
        let hub = HandshakeEventHub()
        let early = hub.subscribe()
        hub.publish(info(1))
        let late = hub.subscribe()
        let unused = hub.subscribe()
        hub.finish()
        #expect(await collect(early).map(\.sequenceNumber) == [1])
        #expect(await collect(late).map(\.sequenceNumber) == [1])
        #expect(await collect(unused).map(\.sequenceNumber) == [1])
    }

    @Test("a subscriber after finish gets the history, then the end")
    func subscribeAfterFinish() async {
        let hub = HandshakeEventHub()
        hub.publish(info(1))
        hub.publish(info(2))
        hub.finish()
        let events = await collect(hub.subscribe())
        #expect(events.map(\.sequenceNumber) == [1, 2])
        #expect(events.first?.kind == .initial)
        // And with no history, just the end.
        let emptyHub = HandshakeEventHub()
        emptyHub.finish()
        #expect(await collect(emptyHub.subscribe()).isEmpty)
    }

    @Test("events published after finish are recorded but reach no stream")
    func publishAfterFinish() async {
        let hub = HandshakeEventHub()
        let stream = hub.subscribe()
        hub.finish()
        hub.publish(info(1))
        #expect(await collect(stream).isEmpty)
        #expect(hub.handshakeCount == 1)
        #expect(await collect(hub.subscribe()).map(\.sequenceNumber) == [1])
    }

    @Test("history keeps the most recent events only")
    func historyLimit() async {
        let hub = HandshakeEventHub()
        let total = HandshakeEventHub.historyLimit + 8
        for number in 1...total { hub.publish(info(number)) }
        hub.finish()
        let events = await collect(hub.subscribe())
        #expect(events.map(\.sequenceNumber) == Array((total - HandshakeEventHub.historyLimit + 1)...total))
        #expect(events.allSatisfy { $0.kind == .renegotiation })
        #expect(hub.handshakeCount == total)
        #expect(hub.latest?.sequenceNumber == total)
    }

    @Test("a subscriber that stopped listening does not stop the others")
    func droppedSubscriber() async {
        let hub = HandshakeEventHub()
        let kept = hub.subscribe()
        do {
            let dropped = hub.subscribe()
            _ = dropped
        }
        hub.publish(info(1))
        hub.publish(info(2))
        hub.finish()
        #expect(await collect(kept).map(\.sequenceNumber) == [1, 2])
    }

    @Test("subscribing while another thread publishes loses no event and reorders none")
    func subscribeDuringPublish() async {
        // With no more events than the history holds, every subscriber must
        // see all of them, in order, whenever it subscribed.
        let total = HandshakeEventHub.historyLimit
        for round in 0..<100 {
            let hub = HandshakeEventHub()
            let publisher = Task.detached {
                for number in 1...total {
                    hub.publish(info(number))
                    await Task.yield()
                }
            }
            var streams: [AsyncStream<HandshakeEvent>] = []
            for _ in 0..<8 {
                streams.append(hub.subscribe())
                await Task.yield()
            }
            await publisher.value
            hub.finish()
            for stream in streams {
                let numbers = await collect(stream).map(\.sequenceNumber)
                #expect(numbers == Array(1...total), "round \(round)")
            }
        }
    }
}
