import Testing
@testable import AsyncNSS

@Suite("HandshakeStateMachine", .timeLimit(.minutes(1)))
struct HandshakeStateMachineTests {
    typealias Machine = HandshakeStateMachine

    /// A comparable spelling of an action.
    func describe(_ action: Machine.Action) -> String {
        switch action {
        case .step: "step"
        case .look: "look"
        case .pump: "pump"
        case .yieldThenLook: "yieldThenLook"
        case .waitReadable: "waitReadable"
        case .waitForInterruption: "waitForInterruption"
        case .succeed: "succeed"
        case .fail(let failure): "fail(\(describe(failure)))"
        case .closeAndFail(let failure): "closeAndFail(\(describe(failure)))"
        }
    }

    func describe(_ failure: Machine.Failure) -> String {
        switch failure {
        case .nss(let error): "nss(\(error))"
        case .timedOut: "timedOut"
        case .cancelled: "cancelled"
        case .closed: "closed"
        case .shutDown: "shutDown"
        }
    }

    let badDomain = TLSError(
        kind: .nss, operation: "handshake with example.com:443", nssCode: -12276,
        nssName: "SSL_ERROR_BAD_CERT_DOMAIN", message: "Unable to communicate securely with peer: requested domain name does not match the server's certificate."
    )

    @Test("a fresh machine is not finished and has taken no step")
    func fresh() {
        let machine = Machine()
        #expect(!machine.isFinished)
        #expect(machine.steps == 0)
    }

    @Test("start asks for a step")
    func startSteps() {
        var machine = Machine()
        #expect(describe(machine.start()) == "step")
        #expect(!machine.isFinished)
        #expect(machine.steps == 0)
    }

    @Test("a complete step succeeds")
    func completeSucceeds() {
        var machine = Machine()
        _ = machine.start()
        #expect(describe(machine.stepped(.complete)) == "succeed")
        #expect(machine.isFinished)
        #expect(machine.steps == 1)
    }

    @Test("a step that would block waits for the socket, and readiness steps again")
    func wouldBlockWaits() {
        var machine = Machine()
        _ = machine.start()
        #expect(describe(machine.stepped(.wouldBlock)) == "waitReadable")
        #expect(!machine.isFinished)
        #expect(describe(machine.waited(.ready)) == "step")
        #expect(!machine.isFinished)
        #expect(describe(machine.stepped(.complete)) == "succeed")
        #expect(machine.isFinished)
        #expect(machine.steps == 2)
    }

    @Test("a failed step fails with the NSS error")
    func failedStepFails() {
        var machine = Machine()
        _ = machine.start()
        let action = machine.stepped(.failed(badDomain))
        guard case .fail(.nss(let error)) = action else {
            Issue.record("expected fail(nss), got \(describe(action))")
            return
        }
        #expect(error == badDomain)
        #expect(machine.isFinished)
        #expect(machine.steps == 1)
    }

    @Test(
        "every wait outcome but ready fails the handshake with its own failure",
        arguments: [
            (PollOutcome.timedOut, "fail(timedOut)"),
            (.cancelled, "fail(cancelled)"),
            (.closed, "fail(closed)"),
            (.shutDown, "fail(shutDown)"),
            (.ready, "step"),
        ]
    )
    func waitOutcomes(outcome: PollOutcome, expected: String) {
        var machine = Machine()
        _ = machine.start()
        _ = machine.stepped(.wouldBlock)
        #expect(describe(machine.waited(outcome)) == expected)
        #expect(machine.isFinished == (outcome != .ready))
        #expect(machine.steps == 1)
    }

    @Test("steps counts every step result over a long handshake")
    func stepsCount() {
        var machine = Machine()
        _ = machine.start()
        for round in 1...7 {
            #expect(describe(machine.stepped(.wouldBlock)) == "waitReadable")
            #expect(machine.steps == round)
            #expect(describe(machine.waited(.ready)) == "step")
            #expect(machine.steps == round, "waiting is not a step")
        }
        #expect(describe(machine.stepped(.complete)) == "succeed")
        #expect(machine.steps == 8)
    }

    @Test("a failure after several steps keeps the count")
    func failureAfterSteps() {
        var machine = Machine()
        _ = machine.start()
        _ = machine.stepped(.wouldBlock)
        _ = machine.waited(.ready)
        _ = machine.stepped(.wouldBlock)
        #expect(describe(machine.waited(.timedOut)) == "fail(timedOut)")
        #expect(machine.steps == 2)
        #expect(machine.isFinished)
    }

    // MARK: Later handshakes (renegotiation, post-handshake authentication)

    func later() -> Machine {
        var machine = Machine(kind: .later)
        #expect(describe(machine.start()) == "look")
        return machine
    }

    @Test("a later handshake starts by looking, and a look that finds the result succeeds")
    func laterLooksFirst() {
        var machine = later()
        #expect(describe(machine.looked(found: true)) == "succeed")
        #expect(machine.isFinished)
        #expect(machine.steps == 0)
    }

    @Test("with no result and no reader it pumps; progress yields to readers, then looks again")
    func laterPumpsAndYields() {
        var machine = later()
        #expect(describe(machine.looked(found: false)) == "pump")
        #expect(describe(machine.pumped(.progress)) == "yieldThenLook")
        #expect(describe(machine.yielded()) == "look")
        #expect(describe(machine.looked(found: false)) == "pump")
        #expect(machine.steps == 1)
        #expect(!machine.isFinished)
    }

    @Test("a pump that finds nothing looks once more, then waits for the socket")
    func laterWaitsAfterEmptyPump() {
        var machine = later()
        _ = machine.looked(found: false)
        #expect(describe(machine.pumped(.nothingToRead)) == "look")
        #expect(describe(machine.looked(found: false)) == "waitReadable")
        #expect(describe(machine.waited(.ready)) == "look")
        // After the wait it pumps again rather than waiting at once.
        #expect(describe(machine.looked(found: false)) == "pump")
    }

    @Test("the read of an empty pump may finish the handshake without data")
    func laterEmptyPumpMayFinish() {
        var machine = later()
        _ = machine.looked(found: false)
        _ = machine.pumped(.nothingToRead)
        #expect(describe(machine.looked(found: true)) == "succeed")
        #expect(machine.isFinished)
    }

    @Test("while the application reads, the driver waits and its reads interrupt the wait")
    func laterLeavesReadingToTheReader() {
        var machine = later()
        _ = machine.looked(found: false)
        #expect(describe(machine.pumped(.readerActive)) == "waitReadable")
        #expect(describe(machine.waited(.interrupted)) == "look")
        #expect(machine.steps == 0, "a reader's reads are not the driver's pumps")
    }

    @Test("with the buffer full it waits only for the application to read")
    func laterBufferFullWaitsForInterruption() {
        var machine = later()
        _ = machine.looked(found: false)
        #expect(describe(machine.pumped(.bufferFull)) == "waitForInterruption")
        #expect(describe(machine.waited(.interrupted)) == "look")
    }

    @Test("a pump that fails fails the handshake with its error, leaving the connection to its reader")
    func laterPumpFails() {
        var machine = later()
        _ = machine.looked(found: false)
        let action = machine.pumped(.failed(badDomain))
        guard case .fail(.nss(let error)) = action else {
            Issue.record("expected fail(nss), got \(describe(action))")
            return
        }
        #expect(error == badDomain)
        #expect(machine.isFinished)
    }

    @Test(
        "a later handshake that times out or is cancelled closes the connection; a closed one only fails",
        arguments: [
            (PollOutcome.timedOut, "closeAndFail(timedOut)"),
            (.cancelled, "closeAndFail(cancelled)"),
            (.closed, "fail(closed)"),
            (.shutDown, "fail(shutDown)"),
            (.ready, "look"),
            (.interrupted, "look"),
        ]
    )
    func laterWaitOutcomes(outcome: PollOutcome, expected: String) {
        var machine = later()
        _ = machine.looked(found: false)
        _ = machine.pumped(.readerActive)
        #expect(describe(machine.waited(outcome)) == expected)
        #expect(machine.isFinished == (outcome != .ready && outcome != .interrupted))
    }

    @Test("the initial handshake never closes: its caller owns the socket")
    func initialNeverCloses() {
        for outcome in [PollOutcome.timedOut, .cancelled] {
            var machine = Machine()
            _ = machine.start()
            _ = machine.stepped(.wouldBlock)
            #expect(describe(machine.waited(outcome)).hasPrefix("fail("))
        }
    }
}
