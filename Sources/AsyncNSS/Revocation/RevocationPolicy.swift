/// Whether and how a peer's certificate is checked for revocation.
///
/// Off by default, as in browsers. Every other policy fails hard: without
/// fresh, good revocation information the handshake fails.
///
/// ```swift
/// var client = TLSConfiguration.makeClientConfiguration()
/// client.revocation = .requireStapledOCSP          // the server must staple
/// client.revocation = .ocsp                        // staple, else ask the responder
/// client.revocation = try await .crl(files: ["ca.crl"])  // these CRLs, whole chain
/// ```
public struct RevocationPolicy: Sendable, CustomStringConvertible {
    enum Mode: Sendable {
        case off
        case stapledOCSP
        case ocsp
        case crl(RevocationLists)
    }

    let mode: Mode

    /// No revocation check. A client still asks for a stapled OCSP response
    /// and reports its status in ``TLSConnectionInfo/stapledOCSPResponse``.
    public static let off = RevocationPolicy(mode: .off)

    /// Clients only: the server must staple an OCSP response (RFC 6066
    /// `status_request`) that says its certificate is good, signed by the
    /// certificate's issuer and not expired. Nothing is fetched. A resumed
    /// session was checked when it was made.
    public static let requireStapledOCSP = RevocationPolicy(mode: .stapledOCSP)

    /// Clients only: the server certificate's status from its stapled OCSP
    /// response or, without a usable one, from the OCSP responder that the
    /// certificate names (its Authority Information Access). The responder is
    /// asked over HTTP from the blocking pool, while the handshake waits. No
    /// answer, or one that is not good, fails the handshake.
    public static let ocsp = RevocationPolicy(mode: .ocsp)

    /// Every certificate of the peer's chain is checked against these
    /// certificate revocation lists, DER or PEM (`-----BEGIN X509 CRL-----`).
    /// A certificate whose issuer has no list here fails, as does one whose
    /// list is past its `nextUpdate`. Clients and servers (client certificates).
    /// The files are read once, here; make a new policy to pick up new lists.
    public static func crl(files: [String]) async throws -> RevocationPolicy {
        let services = try Runtime.shared.services()
        return try await services.blockingPool.run {
            RevocationPolicy(mode: .crl(try RevocationLists(files.map { file in
                (try FileContents.read(file, purpose: "the certificate revocation list"), file)
            })))
        }
    }

    /// ``crl(files:)`` for lists held in memory, each DER or PEM.
    public static func crl(_ lists: [[UInt8]]) throws -> RevocationPolicy {
        RevocationPolicy(mode: .crl(try RevocationLists(lists.enumerated().map { ($1, "revocation list \($0 + 1)") })))
    }

    public var description: String {
        switch mode {
        case .off: "off"
        case .stapledOCSP: "requireStapledOCSP"
        case .ocsp: "ocsp"
        case .crl(let lists): "crl(\(lists.count) lists)"
        }
    }

    /// Whether a server may use this policy: a client staples nothing and
    /// NSS cannot wait on a server for a responder's answer.
    var worksOnServers: Bool {
        switch mode {
        case .off, .crl: true
        case .stapledOCSP, .ocsp: false
        }
    }
}
