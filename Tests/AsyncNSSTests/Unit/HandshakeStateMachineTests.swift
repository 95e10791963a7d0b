import Testing
@testable import AsyncNSS

@Suite("HandshakeStateMachine", .timeLimit(.minutes(1)))
struct HandshakeStateMachineTests {
    typealias Machine = HandshakeStateMachine

    /// A comparable spelling of an action.
    func describe(_ action: Machine.Action) -> String {
        switch action {
        case .step: "step"
        case .waitReadable: "waitReadable"
        case .succeed: "succeed"
        case .fail(let failure): "fail(\(describe(failure)))"
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
}
