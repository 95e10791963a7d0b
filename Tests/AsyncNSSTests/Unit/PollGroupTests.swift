import Testing
@testable import AsyncNSS

/// Sharding over several poll threads: sockets are spread round robin and
/// wait IDs stay unique across the threads.
@Suite("PollGroup", .timeLimit(.minutes(1)))
struct PollGroupTests {
    @Test("sockets are assigned round robin, and wait IDs are unique across the loops")
    func roundRobinAndUniqueIDs() throws {
        let group = try PollGroup(threads: 3)
        defer { group.shutdown() }
        #expect(group.loops.count == 3)
        let assigned = (0..<9).map { _ in group.assign() }
        for loop in group.loops {
            #expect(assigned.filter { $0 === loop }.count == 3)
        }
        var ids = Set<PollWaitID>()
        for loop in group.loops + group.loops {
            #expect(ids.insert(loop.makeWaitID()).inserted)
        }
        #expect(group.waitCount == 0)
    }

    @Test("one thread when asked for none or fewer")
    func atLeastOneThread() throws {
        let group = try PollGroup(threads: 0)
        defer { group.shutdown() }
        #expect(group.loops.count == 1)
        #expect(group.assign() === group.assign())
    }
}
