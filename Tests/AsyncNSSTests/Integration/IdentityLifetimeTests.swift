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

        /// An identity kind, made from the test PKI or token.
        enum Kind: String, CaseIterable, Sendable {
            case database, selfSigned, pkcs11

            func make(_ pki: TestPKI) async throws -> TLSIdentity {
                switch self {
                case .database:
                    try await TLSIdentity.database(pki.database, nickname: "server", password: TestPKI.databasePassword)
                case .selfSigned:
                    try await TLSIdentity.selfSigned()
                case .pkcs11:
                    try await TLSIdentity.pkcs11(keyURI: TestToken.keyURI, modulePath: try await TestToken.shared().modulePath,
                                                 certificateChainFile: pki.serverCertificate, pin: TestToken.pin)
                }
            }

            var isAvailable: Bool {
                switch self {
                case .database: ExternalTool.isInstalled("certutil", "pk12util")
                case .selfSigned: true
                case .pkcs11: TestToken.isAvailable
                }
            }
        }

        @Test("loading, serving with and dropping 20 identities of each other kind does not grow the resource registry",
              arguments: Kind.allCases)
        func otherKindsDoNotGrowRegistry(kind: Kind) async throws {
            // Skipped where the tools are missing, as the suites of those kinds are; CI installs them.
            guard kind.isAvailable else { return }
            try await withTimeout(seconds: 120) {
                let pki = try await TestPKI.shared()
                let registry = try Runtime.shared.services().resources
                let client = TLSConfiguration.makeClientConfiguration(trust: .insecureNoVerification)
                func serveOnce() async throws {
                    let identity = try await kind.make(pki)
                    // Each listener may get a port an earlier one had: a
                    // resumed session would report that one's certificate.
                    NSSRuntime.clearClientSessionCache()
                    let info = try await IdentityTrustHarness.roundTrip(identity: identity, client: client)
                    #expect(!info.resumed)
                    #expect(info.peerCertificates.first?.derBytes == identity.certificateChain.first?.derBytes)
                }
                try await serveOnce()
                let baseline = registry.count
                for _ in 0..<20 { try await serveOnce() }
                let deadline = ContinuousClock.now + .seconds(5)
                while registry.count > baseline, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(registry.count <= baseline, "\(registry.count) entries, \(baseline) before")
            }
        }
    }
}
