import CNSS
import Testing
@testable import AsyncNSS

/// The layout of the poll threads: hot loops that sockets are spread over
/// round robin, one cold loop, and wait IDs unique across all of them.
@Suite("PollGroup", .timeLimit(.minutes(1)))
struct PollGroupTests {
    @Test("k threads are k - 1 hot loops, assigned round robin, and one cold loop; wait IDs are unique")
    func hotLoopsRoundRobinAndUniqueIDs() throws {
        let group = try PollGroup(threads: 3)
        defer { group.shutdown() }
        #expect(group.loops.count == 2)
        let cold = try #require(group.coldLoop)
        #expect(group.loops.allSatisfy { $0.cold === cold })
        let assigned = (0..<8).map { _ in group.assign() }
        for loop in group.loops {
            #expect(assigned.filter { $0 === loop }.count == 4)
        }
        #expect(!assigned.contains { $0 === cold })
        var ids = Set<PollWaitID>()
        for loop in group.loops + group.loops {
            #expect(ids.insert(loop.makeWaitID()).inserted)
        }
        #expect(group.waitCount == 0)
    }

    @Test("the default is one hot loop per core and one cold loop")
    func defaultLayout() throws {
        let group = try PollGroup(threads: PollGroup.automaticThreadCount)
        defer { group.shutdown() }
        #expect(group.loops.count == PollGroup.coreCount)
        #expect(group.coldLoop != nil)
        // Round robin: a turn of assignments visits every hot loop once.
        let assigned = (0..<group.loops.count).map { _ in ObjectIdentifier(group.assign()) }
        #expect(Set(assigned).count == group.loops.count)
    }

    @Test("one thread when asked for one or fewer, with no cold loop")
    func singleLoop() throws {
        for threads in [0, 1] {
            let group = try PollGroup(threads: threads)
            defer { group.shutdown() }
            #expect(group.loops.count == 1)
            #expect(group.coldLoop == nil)
            #expect(group.loops[0].cold == nil)
        }
    }
}

/// Waits that move from the hot loop to the cold one, on real poll threads.
/// The socket is an NSPR pollable event: readable once set.
@Suite("Hot and cold poll loops", .timeLimit(.minutes(1)))
struct HotColdPollLoopTests {
    /// A group whose waits move to the cold loop after 20 ms, a pollable
    /// event as the socket, and its hot loop.
    struct Fixture {
        let group: PollGroup
        let hot: PollLoop
        let cold: PollLoop
        let socket: PollSocket

        init() throws {
            group = try PollGroup(threads: 2, demotionDelay: .milliseconds(20))
            hot = group.loops[0]
            cold = try #require(group.coldLoop)
            socket = PollSocket(fd: try #require(PR_NewPollableEvent()))
        }

        /// Returns once `count` waits sit on the cold loop and none on the hot one.
        func untilDemoted(_ count: Int = 1) async throws {
            while cold.waitCount < count || hot.waitCount > 0 {
                try await Task.sleep(for: .milliseconds(5))
            }
        }

        func close() async {
            await hot.quiesce(socket)
            PR_DestroyPollableEvent(socket.fd)
            group.shutdown()
        }
    }

    @Test("a read wait pending past the delay moves to the cold loop, which resumes it when the socket is ready")
    func demotedWaitBecomesReady() async throws {
        let fixture = try Fixture()
        let socket = fixture.socket
        let waiting = Task { await fixture.hot.wait(for: .read, on: socket) }
        try await fixture.untilDemoted()
        PR_SetPollableEvent(socket.fd)
        #expect(await waiting.value == .ready)
        #expect(fixture.group.waitCount == 0)
        // The next wait registers on the hot loop again.
        PR_WaitForPollableEvent(socket.fd)
        let next = Task { await fixture.hot.wait(for: .read, on: socket) }
        while fixture.hot.waitCount == 0 { try await Task.sleep(for: .milliseconds(1)) }
        PR_SetPollableEvent(socket.fd)
        #expect(await next.value == .ready)
        await fixture.close()
    }

    @Test("a demoted wait keeps its deadline")
    func demotedWaitTimesOut() async throws {
        let fixture = try Fixture()
        let socket = fixture.socket
        let waiting = Task { await fixture.hot.wait(for: .read, on: socket, deadline: .now + .milliseconds(400)) }
        #expect(await waiting.value == .timedOut)
        #expect(fixture.group.waitCount == 0)
        await fixture.close()
    }

    @Test("cancelling a demoted wait ends it on the cold loop")
    func demotedWaitCancelled() async throws {
        let fixture = try Fixture()
        let socket = fixture.socket
        let waiting = Task { await fixture.hot.wait(for: .read, on: socket) }
        try await fixture.untilDemoted()
        waiting.cancel()
        #expect(await waiting.value == .cancelled)
        #expect(fixture.group.waitCount == 0)
        await fixture.close()
    }

    @Test("interrupting a demoted wait ends it on the cold loop")
    func demotedWaitInterrupted() async throws {
        let fixture = try Fixture()
        let socket = fixture.socket
        let id = fixture.hot.makeWaitID()
        let waiting = Task { await fixture.hot.wait(for: .write, on: socket, id: id) }
        // A pollable event is never writable: the wait stays until it moves.
        try await fixture.untilDemoted()
        fixture.hot.interrupt(id)
        #expect(await waiting.value == .interrupted)
        #expect(fixture.group.waitCount == 0)
        await fixture.close()
    }

    @Test("quiescing through the hot loop closes demoted waits and waits for the cold poll")
    func demotedWaitQuiesced() async throws {
        let fixture = try Fixture()
        let socket = fixture.socket
        let waiting = Task { await fixture.hot.wait(for: .read, on: socket) }
        try await fixture.untilDemoted()
        await fixture.hot.quiesce(socket)
        #expect(await waiting.value == .closed)
        #expect(fixture.group.waitCount == 0)
        await fixture.close()
    }

    @Test("interruption-only waits stay on the hot loop")
    func interruptionOnlyStaysHot() async throws {
        let fixture = try Fixture()
        let socket = fixture.socket
        let id = fixture.hot.makeWaitID()
        let waiting = Task { await fixture.hot.wait(for: .interruptionOnly, on: socket, id: id) }
        while fixture.hot.waitCount == 0 { try await Task.sleep(for: .milliseconds(1)) }
        // Long enough for several batches to have been due.
        try await Task.sleep(for: .milliseconds(150))
        #expect(fixture.hot.waitCount == 1)
        #expect(fixture.cold.waitCount == 0)
        fixture.hot.interrupt(id)
        #expect(await waiting.value == .interrupted)
        await fixture.close()
    }

    @Test("a busy hot loop moves a wait from the minimum age on, long before the delay")
    func busyLoopDemotesEarly() async throws {
        let group = try PollGroup(threads: 2, demotionDelay: .seconds(60))
        let hot = group.loops[0]
        let cold = try #require(group.coldLoop)
        let idle = PollSocket(fd: try #require(PR_NewPollableEvent()))
        let busy = PollSocket(fd: try #require(PR_NewPollableEvent()))
        let waiting = Task { await hot.wait(for: .read, on: idle) }
        while hot.waitCount == 0 { try await Task.sleep(for: .milliseconds(1)) }
        try await Task.sleep(for: PollLoop.minimumDemotionAge + .milliseconds(50))
        // Old enough, but no poll has scanned it: it stays.
        #expect(cold.waitCount == 0)
        // Each round trip on the busy socket is at least one hot poll that
        // scans both entries; the batch costs the empty cold array plus the
        // fixed share, so at most about 128 round trips pay for it. That the
        // scanning must pay for it is PollRegistryDemotionTests' to check;
        // here it must happen long before the 60 s delay.
        let busyUntil = ContinuousClock.now + .seconds(20)
        while cold.waitCount == 0, ContinuousClock.now < busyUntil {
            let ready = Task { await hot.wait(for: .read, on: busy) }
            // Both waits registered; the idle one may move meanwhile.
            while hot.waitCount + cold.waitCount < 2 { await Task.yield() }
            PR_SetPollableEvent(busy.fd)
            #expect(await ready.value == .ready)
            PR_WaitForPollableEvent(busy.fd)
        }
        #expect(cold.waitCount == 1)
        #expect(hot.waitCount == 0)
        // The moved wait still ends when its socket becomes ready.
        PR_SetPollableEvent(idle.fd)
        #expect(await waiting.value == .ready)
        await hot.quiesce(idle)
        await hot.quiesce(busy)
        PR_DestroyPollableEvent(idle.fd)
        PR_DestroyPollableEvent(busy.fd)
        group.shutdown()
    }

    @Test("shutdown ends demoted waits")
    func shutdownEndsDemotedWaits() async throws {
        let fixture = try Fixture()
        let socket = fixture.socket
        let waiting = Task { await fixture.hot.wait(for: .read, on: socket) }
        try await fixture.untilDemoted()
        fixture.group.shutdown()
        #expect(await waiting.value == .shutDown)
        PR_DestroyPollableEvent(socket.fd)
    }
}
