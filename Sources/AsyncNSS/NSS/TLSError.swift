/// An error from AsyncNSS.
///
/// When NSS or NSPR reported the failure, ``nssCode`` carries the `PRErrorCode`,
/// ``nssName`` its symbolic name (for example `SSL_ERROR_BAD_CERT_DOMAIN`) and
/// ``message`` its text. ``operation`` says what the library was doing, so the
/// description reads like
/// `handshake with 127.0.0.1:443: SSL_ERROR_BAD_CERT_DOMAIN: Unable to communicate securely…`.
public struct TLSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The broad category of an error. Extensible: match with `==`, not `switch`.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        fileprivate let raw: String
        public var description: String { raw }

        /// NSS or NSPR reported the failure; see ``TLSError/nssCode``.
        public static let nss = Kind(raw: "nss")
        /// A certificate or key could not be loaded or does not fit.
        public static let invalidIdentity = Kind(raw: "invalidIdentity")
        /// A configuration value is out of range or inconsistent.
        public static let invalidConfiguration = Kind(raw: "invalidConfiguration")
        /// The handshake did not complete before its deadline.
        public static let handshakeTimedOut = Kind(raw: "handshakeTimedOut")
        /// The connection or listener is already closed.
        public static let closed = Kind(raw: "closed")
        /// A host name could not be resolved.
        public static let nameResolution = Kind(raw: "nameResolution")
        /// The peer closed the TCP connection without sending close_notify.
        public static let truncated = Kind(raw: "truncated")
        /// Another task is already performing this operation on the connection.
        public static let concurrentOperation = Kind(raw: "concurrentOperation")
        /// The peer or this side's ``RenegotiationPolicy`` refused a renegotiation.
        public static let renegotiationRefused = Kind(raw: "renegotiationRefused")
        /// The peer sent no certificate when it was asked for one.
        public static let peerCertificateMissing = Kind(raw: "peerCertificateMissing")
        /// The peer did not offer what the operation needs (a TLS 1.3 client
        /// without post-handshake authentication, for example).
        public static let notOfferedByPeer = Kind(raw: "notOfferedByPeer")
        /// The NSS runtime could not be initialised or has been shut down.
        public static let runtime = Kind(raw: "runtime")
        /// A connection to a listener that requires a PROXY protocol header
        /// began without a valid one.
        public static let proxyProtocol = Kind(raw: "proxyProtocol")
    }

    /// The category of this error.
    public var kind: Kind
    /// What the library was doing, for example `handshake with 127.0.0.1:8443`.
    public var operation: String
    /// The NSPR/NSS error code (`PRErrorCode`), when NSS reported the failure.
    public var nssCode: Int32?
    /// The symbolic name of ``nssCode`` from `PR_ErrorToName`.
    public var nssName: String?
    /// A human-readable explanation.
    public var message: String

    /// An error of `kind` during `operation`, with the NSPR/NSS code and its
    /// name when NSS reported one.
    public init(kind: Kind, operation: String, nssCode: Int32? = nil, nssName: String? = nil, message: String) {
        self.kind = kind
        self.operation = operation
        self.nssCode = nssCode
        self.nssName = nssName
        self.message = message
    }

    public var description: String {
        if let nssName {
            return "\(operation): \(nssName): \(message)"
        }
        return "\(operation): \(message)"
    }

    /// Returns a copy whose operation is `operation`, for errors raised deep
    /// inside a call and reported at a higher level.
    func during(_ operation: String) -> TLSError {
        var copy = self
        copy.operation = operation
        return copy
    }
}
