import Testing
@testable import AsyncNSS

@Suite("ConnectionStateMachine", .timeLimit(.minutes(1)))
struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine

    let peer = "127.0.0.1:8443"

    func describe(_ action: Machine.ReadAction) -> String {
        switch action {
        case .read: "read"
        case .waitReadable: "waitReadable"
        case .deliver(let bytes): "deliver(\(bytes))"
        case .deliverEnd: "deliverEnd"
        case .fail(let error): "fail(\(error.kind))"
        case .closeAndFail(let error): "closeAndFail(\(error.map { "\($0.kind)" } ?? "nil"))"
        }
    }

    func describe(_ action: Machine.WriteAction) -> String {
        switch action {
        case .write: "write"
        case .fail(let error): "fail(\(error.kind))"
        }
    }

    func failure(_ action: Machine.ReadAction) -> TLSError? {
        if case .fail(let error) = action { return error }
        return nil
    }

    func failure(_ action: Machine.WriteAction) -> TLSError? {
        if case .fail(let error) = action { return error }
        return nil
    }

    /// A machine that is waiting for the socket inside a read.
    func waitingMachine() -> Machine {
        var machine = Machine(peer: peer)
        _ = machine.beginRead()
        _ = machine.readReturned(.wouldBlock)
        return machine
    }

    // MARK: Reading

    @Test("a read delivers its bytes and the next read starts again")
    func bytesThenIdle() {
        var machine = Machine(peer: peer)
        #expect(describe(machine.beginRead()) == "read")
        #expect(describe(machine.readReturned(.bytes([1, 2, 3]))) == "deliver([1, 2, 3])")
        #expect(describe(machine.beginRead()) == "read")
        #expect(describe(machine.readReturned(.bytes([4]))) == "deliver([4])")
        #expect(!machine.isClosed)
        #expect(machine.operation == "connection with \(peer)")
    }

    @Test("would block waits, readiness reads again, then bytes arrive")
    func wouldBlockThenReady() {
        var machine = Machine(peer: peer)
        _ = machine.beginRead()
        #expect(describe(machine.readReturned(.wouldBlock)) == "waitReadable")
        #expect(describe(machine.readWaitEnded(.ready)) == "read")
        #expect(describe(machine.readReturned(.wouldBlock)) == "waitReadable")
        #expect(describe(machine.readWaitEnded(.ready)) == "read")
        #expect(describe(machine.readReturned(.bytes([9, 9]))) == "deliver([9, 9])")
        #expect(describe(machine.beginRead()) == "read")
    }

    @Test("a recoverable error reads again")
    func recoverableReadsAgain() {
        var machine = Machine(peer: peer)
        _ = machine.beginRead()
        #expect(describe(machine.readReturned(.recoverable)) == "read")
        #expect(describe(machine.readReturned(.bytes([7]))) == "deliver([7])")
    }

    @Test("a second reader while one is reading fails with concurrentOperation")
    func concurrentRead() {
        var machine = Machine(peer: peer)
        #expect(describe(machine.beginRead()) == "read")
        let error = failure(machine.beginRead())
        #expect(error?.kind == .concurrentOperation)
        #expect(error?.operation == "reading from \(peer)")
        // Also while the first reader waits for the socket.
        _ = machine.readReturned(.wouldBlock)
        #expect(failure(machine.beginRead())?.kind == .concurrentOperation)
        // The first read is not disturbed.
        #expect(describe(machine.readWaitEnded(.ready)) == "read")
        #expect(describe(machine.readReturned(.bytes([1]))) == "deliver([1])")
        #expect(describe(machine.beginRead()) == "read")
    }

    @Test("close_notify ends the stream cleanly, and every later read sees the end")
    func cleanEnd() {
        var machine = Machine(peer: peer)
        _ = machine.beginRead()
        #expect(describe(machine.readReturned(.endOfStream(closeNotify: true))) == "deliverEnd")
        #expect(describe(machine.beginRead()) == "deliverEnd")
        #expect(describe(machine.beginRead()) == "deliverEnd")
        #expect(!machine.isClosed)
    }

    @Test("an end without close_notify fails as truncated, and so does every later read")
    func truncatedEnd() {
        var machine = Machine(peer: peer)
        _ = machine.beginRead()
        let first = failure(machine.readReturned(.endOfStream(closeNotify: false)))
        #expect(first?.kind == .truncated)
        #expect(first?.operation == "reading from \(peer)")
        #expect(first?.message.contains("close_notify") == true)
        for _ in 0..<3 {
            #expect(failure(machine.beginRead()) == first)
        }
    }

    @Test("an NSS read error fails this read and every later one")
    func failedRead() {
        let reset = TLSError(kind: .nss, operation: "reading from \(peer)", nssCode: -5961, nssName: "PR_CONNECT_RESET_ERROR", message: "TCP connection reset by peer")
        var machine = Machine(peer: peer)
        _ = machine.beginRead()
        #expect(failure(machine.readReturned(.failed(reset))) == reset)
        #expect(failure(machine.beginRead()) == reset)
        #expect(failure(machine.beginRead()) == reset)
    }

    @Test("cancellation while waiting closes and fails with CancellationError, later reads fail as closed")
    func cancelledWait() {
        var machine = waitingMachine()
        #expect(describe(machine.readWaitEnded(.cancelled)) == "closeAndFail(nil)")
        let later = failure(machine.beginRead())
        #expect(later?.kind == .closed)
        #expect(later?.operation == "connection with \(peer)")
    }

    @Test("a wait that ends for any other reason fails as closed", arguments: [PollOutcome.closed, .timedOut, .shutDown])
    func waitEndedClosed(outcome: PollOutcome) {
        var machine = waitingMachine()
        let error = failure(machine.readWaitEnded(outcome))
        #expect(error?.kind == .closed)
        #expect(error?.operation == "connection with \(peer)")
        #expect(failure(machine.beginRead()) == error)
    }

    // MARK: Writing

    @Test("writes are allowed until the output is shut down")
    func writeAfterShutdown() {
        var machine = Machine(peer: peer)
        #expect(describe(machine.beginWrite()) == "write")
        #expect(describe(machine.beginWrite()) == "write")
        machine.outputWasShutDown()
        let error = failure(machine.beginWrite())
        #expect(error?.kind == .closed)
        #expect(error?.operation == "writing to \(peer)")
        // Reading is not affected by shutting down the output.
        #expect(describe(machine.beginRead()) == "read")
    }

    @Test("writing is independent of how reading ended")
    func writeAfterReadEnded() {
        var machine = Machine(peer: peer)
        _ = machine.beginRead()
        _ = machine.readReturned(.endOfStream(closeNotify: false))
        #expect(describe(machine.beginWrite()) == "write")
    }

    // MARK: Closing

    @Test("close returns true once, then false")
    func closeOnce() {
        var machine = Machine(peer: peer)
        #expect(!machine.isClosed)
        let first = machine.close()
        #expect(first)
        #expect(machine.isClosed)
        let second = machine.close()
        #expect(!second)
        let third = machine.close()
        #expect(!third)
        #expect(machine.isClosed)
    }

    @Test("after close, reads and writes fail as closed")
    func closedFailsEverything() {
        var machine = Machine(peer: peer)
        _ = machine.close()
        let read = failure(machine.beginRead())
        #expect(read?.kind == .closed)
        #expect(read?.operation == "connection with \(peer)")
        #expect(failure(machine.beginWrite())?.kind == .closed)
    }

    @Test("close wins over a cleanly ended stream and over an earlier failure")
    func closeWinsOverReadState() {
        var ended = Machine(peer: peer)
        _ = ended.beginRead()
        _ = ended.readReturned(.endOfStream(closeNotify: true))
        _ = ended.close()
        #expect(failure(ended.beginRead())?.kind == .closed)

        var truncated = Machine(peer: peer)
        _ = truncated.beginRead()
        _ = truncated.readReturned(.endOfStream(closeNotify: false))
        _ = truncated.close()
        #expect(failure(truncated.beginRead())?.kind == .closed)

        var shut = Machine(peer: peer)
        shut.outputWasShutDown()
        _ = shut.close()
        #expect(failure(shut.beginWrite())?.operation == "connection with \(peer)", "the closed error, not the shut-down one")
    }
}
