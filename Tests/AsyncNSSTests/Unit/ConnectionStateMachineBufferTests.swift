import Testing
@testable import AsyncNSS

/// What a rehandshake reads while no task reads is kept and delivered first.
@Suite("ConnectionStateMachine during rehandshakes", .timeLimit(.minutes(1)))
struct ConnectionStateMachineBufferTests {
    typealias Machine = ConnectionStateMachine

    func delivered(_ action: Machine.ReadAction) -> [UInt8]? {
        if case .deliver(let bytes) = action { return bytes }
        return nil
    }

    @Test("data a rehandshake read is delivered in order, split to the reader's size")
    func bufferedDataComesFirst() {
        var machine = Machine(peer: "peer")
        #expect(!machine.hasActiveReader)
        #expect(machine.pumpReturned(.bytes([1, 2, 3, 4, 5])) == .progress)
        #expect(machine.pumpReturned(.bytes([6, 7])) == .progress)
        #expect(machine.pumpReturned(.wouldBlock) == .waitReadable)
        #expect(machine.bufferedByteCount == 7)

        #expect(delivered(machine.beginRead(maxBytes: 3)) == [1, 2, 3])
        #expect(delivered(machine.beginRead(maxBytes: 100)) == [4, 5])
        #expect(delivered(machine.beginRead()) == [6, 7])
        #expect(machine.bufferedByteCount == 0)
        #expect(!machine.hasActiveReader, "a read served from the buffer does not stay active")

        guard case .read = machine.beginRead() else {
            Issue.record("with nothing buffered the reader reads the socket")
            return
        }
        #expect(machine.hasActiveReader)
    }

    @Test("an end the rehandshake saw comes after the buffered data")
    func endAfterBufferedData() {
        var clean = Machine(peer: "peer")
        _ = clean.pumpReturned(.bytes([9]))
        guard case .fail(let error) = clean.pumpReturned(.endOfStream(closeNotify: true)) else {
            Issue.record("the handshake cannot complete once the peer closed")
            return
        }
        // A half-close: the peer can no longer take part, this side may still write.
        #expect(error.kind == .renegotiationRefused)
        #expect(error.message.contains("close_notify"))
        #expect(delivered(clean.beginRead()) == [9])
        guard case .deliverEnd = clean.beginRead() else {
            Issue.record("close_notify ends the stream cleanly")
            return
        }

        var truncated = Machine(peer: "peer")
        _ = truncated.pumpReturned(.bytes([8]))
        guard case .fail(let closed) = truncated.pumpReturned(.endOfStream(closeNotify: false)) else {
            Issue.record("the handshake cannot complete once the peer closed")
            return
        }
        #expect(closed.kind == .closed)
        #expect(delivered(truncated.beginRead()) == [8])
        guard case .fail(let failure) = truncated.beginRead() else {
            Issue.record("a bare close is reported as truncation")
            return
        }
        #expect(failure.kind == .truncated)
    }

    @Test("a refused renegotiation is progress, a failure is kept for the reader")
    func recoverableAndFailure() {
        var machine = Machine(peer: "peer")
        #expect(machine.pumpReturned(.recoverable) == .progress)
        let failure = TLSError(kind: .nss, operation: "peer", message: "bad record")
        #expect(machine.pumpReturned(.failed(failure)) == .fail(failure))
        guard case .fail(let seen) = machine.beginRead() else {
            Issue.record("the reader sees the failure")
            return
        }
        #expect(seen == failure)
    }
}
