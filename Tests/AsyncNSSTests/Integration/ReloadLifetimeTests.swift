@testable import AsyncNSS
import Foundation
import Testing

extension Integration {
    /// Found by the soak work on reloads (RELIABILITY.md): every reload kept the
    /// setup it replaced, with its model socket (a descriptor) and its identity,
    /// until the listener closed.
    @Suite("Reloads let go of the setups they replace")
    struct ReloadLifetimeTests {
        @Test("60 reloads of a listener leave no descriptor behind")
        func reloadsKeepNoDescriptors() async throws {
            try await withTimeout(seconds: 60) {
                let first = try await TLSIdentity.selfSigned(names: ["first.test"])
                let second = try await TLSIdentity.selfSigned(names: ["second.test"])
                let listener = try await TLSListener.bind(port: 0, configuration: .makeServerConfiguration(identity: first))
                let server = Task { await EchoServer.serveAll(listener) }
                #expect(try await ReloadTests.subject(port: listener.port) == "CN=first.test")
                let baseline = await FileDescriptors.settle(at: FileDescriptors.count())
                for round in 0..<60 {
                    try await listener.reload(.makeServerConfiguration(identity: round.isMultiple(of: 2) ? second : first))
                }
                // Before the fix: one more descriptor per reload (60).
                let after = await FileDescriptors.settle(at: baseline)
                #expect(after <= baseline + 3, "\(after) descriptors, \(baseline) before 60 reloads")
                #expect(try await ReloadTests.subject(port: listener.port) == "CN=first.test")
                await listener.close()
                await server.value
            }
        }

        @Test("a replaced setup stays open while an import holds it, and closes after its last one")
        func leaseKeepsReplacedSetupOpen() async throws {
            try await withTimeout(seconds: 30) {
                let identity = try await TLSIdentity.selfSigned(names: ["lease.test"])
                let services = try Runtime.shared.services()
                func make() async throws -> ServerSetup {
                    try await ServerSetup.make(.makeServerConfiguration(identity: identity), services: services, operation: "test")
                }
                let first = try await make()
                let second = try await make()
                let third = try await make()
                let setups = ServerSetups(first)

                let lease = setups.take()
                let another = setups.take()
                await setups.replace(with: second)
                #expect(first.model.isOpen, "an import still holds it")
                #expect(setups.retiredCount == 1)
                await setups.finish(lease)
                #expect(first.model.isOpen, "a second import still holds it")
                await setups.finish(another)
                #expect(!first.model.isOpen)
                #expect(setups.retiredCount == 0)

                // Nobody holds the current one: replacing it closes it at once.
                await setups.replace(with: third)
                #expect(!second.model.isOpen)
                #expect(setups.retiredCount == 0)
                let current = setups.take()
                #expect(current.setup.model.isOpen)
                await setups.finish(current)
                #expect(current.setup.model.isOpen, "the current setup stays open after its lease")

                await setups.closeAll()
                #expect(!third.model.isOpen)
                // A setup handed over after closeAll is closed, not kept.
                let late = try await make()
                await setups.replace(with: late)
                #expect(!late.model.isOpen)
            }
        }
    }
}
