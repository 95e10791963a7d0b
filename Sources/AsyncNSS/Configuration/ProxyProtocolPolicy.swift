/// Whether a listener expects a PROXY protocol header (HAProxy's, version 1
/// or 2) in front of each connection; see ``ProxyProtocolHeader``.
public enum ProxyProtocolPolicy: Sendable, Hashable {
    /// Connections start with TLS (the default).
    case off
    /// Every connection starts with a PROXY header, version 1 or 2, which is
    /// read before TLS starts and within ``TLSConfiguration/handshakeTimeout``.
    /// A connection without a valid one is closed and logged, and the
    /// listener goes on. Its ``TLSConnection/remoteAddress`` is the client's
    /// address from the header, and ``TLSConnection/proxyHeader`` holds
    /// the header.
    ///
    /// - Important: Turn this on only for a listener that nothing but the
    ///   proxy can reach: whoever connects directly can claim any address.
    case required
}
