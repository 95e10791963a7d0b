import ArgumentParser
import AsyncNSS

/// `--revocation off|staple|ocsp` of `connect`.
enum RevocationArgument: String, ExpressibleByArgument, CaseIterable, Sendable {
    case off, staple, ocsp

    var policy: RevocationPolicy {
        switch self {
        case .off: .off
        case .staple: .requireStapledOCSP
        case .ocsp: .ocsp
        }
    }
}
