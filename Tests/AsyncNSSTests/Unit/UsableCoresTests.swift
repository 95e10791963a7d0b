import Foundation
import Testing
@testable import AsyncNSS

/// The default number of event loops follows the cores the process may use,
/// not the machine's.
@Suite("UsableCores: CPU affinity")
struct UsableCoresTests {
    @Test("Cpus_allowed_list is counted", arguments: [
        ("Name:\tx\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n", 2),
        ("Cpus_allowed_list:\t0-3,8,10-11\n", 7),
        ("Cpus_allowed_list:\t5\n", 1),
        ("Cpus_allowed_list:\t0-63\nMems_allowed_list:\t0\n", 64),
    ])
    func allowedList(status: String, expected: Int) {
        #expect(UsableCores.allowedCPUs(inStatus: status) == expected)
    }

    @Test("a status without a valid list gives nil", arguments: [
        "Name:\tx\n", "Cpus_allowed_list:\t\n", "Cpus_allowed_list:\t3-1\n", "Cpus_allowed_list:\tzero\n", "Cpus_allowed_list:\t1-2-3\n",
    ])
    func malformedList(status: String) {
        #expect(UsableCores.allowedCPUs(inStatus: status) == nil)
    }

    @Test("this process: at least one core, at most the machine's")
    func thisProcess() async throws {
        try await withTimeout(seconds: 30) {
            let count = UsableCores.count()
            #expect(count >= 1 && count <= ProcessInfo.processInfo.processorCount)
            #expect(NSSRuntime.usableCores == count)
        }
    }
}
