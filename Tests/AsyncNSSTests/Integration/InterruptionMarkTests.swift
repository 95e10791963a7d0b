@testable import AsyncNSS
import CNSS
import Testing

extension Integration {
    /// A rehandshake looks at NSS's state, then waits; the application's
    /// reader may finish the handshake in between and interrupt before the
    /// wait exists. These tests check that such an interruption is never lost
    /// (the cause of a rare 10 s stall in `RehandshakeTests` under load).
    @Suite("A wait made with an interruption mark never misses an interruption")
    struct InterruptionMarkTests {
        /// A listening socket that nobody connects to: never readable, so only
        /// an interruption or a deadline ends a wait on it.
        private static func subject() throws -> (WaitInterruptions, SocketHandle) {
            let services = try Runtime.shared.services()
            let fd = try #require(PR_OpenTCPSocket(Int32(PR_AF_INET)))
            var address = PRNetAddr()
            #expect(PR_InitializeNetAddr(PR_IpAddrLoopback, 0, &address) == PR_SUCCESS)
            #expect(PR_Bind(fd, &address) == PR_SUCCESS)
            #expect(PR_Listen(fd, 1) == PR_SUCCESS)
            let socket = SocketHandle(fd, services: services)
            let interruptions = WaitInterruptions()
            interruptions.attach(socket)
            return (interruptions, socket)
        }

        @Test("an interruption between the mark and the wait ends the wait at once")
        func interruptionBeforeWait() async throws {
            try await withTimeout(seconds: 10) {
                let (interruptions, socket) = try Self.subject()
                let mark = interruptions.interruptionMark()
                interruptions.interruptWaits()
                #expect(await interruptions.wait(on: socket, for: .read, since: mark) == .interrupted)
                await socket.close()
            }
        }

        @Test("one interruption racing with the wait's registration always ends it")
        func racingInterruption() async throws {
            try await withTimeout(seconds: 30) {
                let (interruptions, socket) = try Self.subject()
                for _ in 0..<500 {
                    let mark = interruptions.interruptionMark()
                    let waiting = Task { await interruptions.wait(on: socket, for: .read, since: mark) }
                    interruptions.interruptWaits()
                    // A lost interruption leaves the wait hanging: the time
                    // limit cancels it, and the outcome shows it.
                    let outcome = await withTaskCancellationHandler { await waiting.value } onCancel: { waiting.cancel() }
                    #expect(outcome == .interrupted)
                    if outcome != .interrupted { break }
                }
                await socket.close()
            }
        }

        @Test("without an interruption the wait lasts until its deadline")
        func deadlineWithoutInterruption() async throws {
            try await withTimeout(seconds: 10) {
                let (interruptions, socket) = try Self.subject()
                let mark = interruptions.interruptionMark()
                let outcome = await interruptions.wait(on: socket, for: .read, deadline: .now + .milliseconds(50), since: mark)
                #expect(outcome == .timedOut)
                await socket.close()
            }
        }
    }
}
