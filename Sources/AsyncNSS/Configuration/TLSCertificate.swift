/// An X.509 certificate as DER, with its subject for display.
public struct TLSCertificate: Sendable, Hashable, CustomStringConvertible {
    /// The DER encoding of the certificate.
    public let derBytes: [UInt8]
    /// The subject distinguished name as an RFC 4514 string, most significant
    /// RDN last, as NSS prints it: `/CN=client/O=Example` reads `O=Example,CN=client`.
    public let subject: String

    init(derBytes: [UInt8], subject: String) {
        self.derBytes = derBytes
        self.subject = subject
    }

    /// The certificate as a PEM block.
    public var pemRepresentation: String {
        PEM.encode(label: "CERTIFICATE", der: derBytes)
    }

    public var description: String { subject }
}
