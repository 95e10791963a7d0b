import ArgumentParser
import AsyncNSS

/// A `--client-auth` value: whether `serve` asks clients for a certificate.
enum ClientAuthArgument: String, ExpressibleByArgument, CaseIterable, Sendable {
    case none, request, require

    var policy: ClientCertificatePolicy {
        switch self {
        case .none: .none
        case .request: .request
        case .require: .require
        }
    }
}
