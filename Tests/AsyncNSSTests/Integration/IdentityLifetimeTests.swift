@testable import AsyncNSS
import Foundation
import Testing

extension Integration {
    @Suite("Identities let go of what they hold")
    struct IdentityLifetimeTests {
        /// Found while fuzzing identity loading: every certificate and key
        /// object stayed in the runtime's resource registry after it was freed.
        @Test("loading and dropping 100 PEM identities does not grow the runtime's resource registry")
        func registryDoesNotGrow() async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                let chain = try String(contentsOfFile: pki.serverCertificate, encoding: .utf8)
                let key = try String(contentsOfFile: pki.serverKey, encoding: .utf8)
                let registry = try Runtime.shared.services().resources
                let warmUp = try await TLSIdentity.pem(certificateChain: chain, privateKey: key)
                #expect(warmUp.certificateChain.count == 1)
                let baseline = registry.count
                for _ in 0..<100 {
                    let identity = try await TLSIdentity.pem(certificateChain: chain, privateKey: key)
                    #expect(identity.certificateChain.count == 1)
                }
                // Objects are freed by whichever thread drops the last
                // reference, so give them a moment, as FileDescriptors.settle
                // does for sockets. Before the fix, 50 identities left 27 entries.
                let deadline = ContinuousClock.now + .seconds(5)
                while registry.count > baseline, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(registry.count <= baseline, "\(registry.count) entries, \(baseline) before")
            }
        }
    }
}
