import Foundation
import Testing
@testable import AsyncNSS

/// The default number of event loops follows the cores the process may use,
/// not the machine's.
@Suite("UsableCores: affinity and container CPU quota")
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

    @Test("cgroup v2 cpu.max: a quota rounds up to whole cores; max is no limit")
    func cgroup2() {
        #expect(UsableCores.quotaCores(cgroup2CPUMax: "200000 100000\n") == 2)
        #expect(UsableCores.quotaCores(cgroup2CPUMax: "150000 100000\n") == 2)
        #expect(UsableCores.quotaCores(cgroup2CPUMax: "50000 100000\n") == 1)
        #expect(UsableCores.quotaCores(cgroup2CPUMax: "max 100000\n") == nil)
        #expect(UsableCores.quotaCores(cgroup2CPUMax: "") == nil)
    }

    @Test("cgroup v1 cfs quota and period: -1 is no limit")
    func cgroup1() {
        #expect(UsableCores.quotaCores(quota: "400000\n", period: "100000\n") == 4)
        #expect(UsableCores.quotaCores(quota: "-1\n", period: "100000\n") == nil)
        #expect(UsableCores.quotaCores(quota: nil, period: nil) == nil)
        #expect(UsableCores.quotaCores(quota: "100000", period: "0") == nil)
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
