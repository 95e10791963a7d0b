internal import CNSS
import Synchronization

/// Chooses a server's identity from the ClientHello's SNI name before NSS
/// reads the ClientHello, so that the socket is set up with that identity
/// alone from the start.
///
/// NSS calls its SNI hook too late for a switch there to be complete: on
/// TLS 1.2 the cipher suite is already chosen for the default identity's
/// key type, and `SSL_ConfigServerCert` from the hook adds the named
/// certificate next to the default one instead of replacing it (NSS then
/// picks by key type, and on TLS 1.3 by list order). So the ClientHello is
/// read into the socket's read-ahead layer first, where NSS finds it
/// afterwards as if it came from the socket, and only then is the socket
/// imported into NSS.
enum ServerNamePreselection {
    /// What the ClientHello decided.
    enum Choice: Sendable {
        /// The name it asked for, and the identity chosen for it.
        case identity(name: String, TLSIdentity)
        /// It is an Encrypted Client Hello that this server can decrypt: the
        /// name is known only once NSS has decrypted it, and NSS's SNI hook
        /// sets the identity up then (``ConnectionCallbacks/selectIdentity(for:on:)``).
        /// Until then the socket has the public name's identity, if it has
        /// one of its own, or the default: NSS chooses the cipher suite
        /// before the hook, and only among suites that some certificate serves.
        case afterDecryption(publicName: String?, TLSIdentity?)
    }

    /// Whether a server with `settings` presents other identities than its default.
    static func isNeeded(_ settings: ConnectionSettings) -> Bool {
        !settings.serverNameIdentities.isEmpty || settings.serverNameSelector != nil
    }

    /// `configuration` with the identity chosen for the ClientHello's name
    /// (see ``choose(on:settings:deadline:operation:)``), which it records in
    /// `callbacks` for NSS's SNI hook; nil when `configuration`'s own identity serves, or when the settings
    /// have no per-name identities.
    @inline(never)
    static func configuration(_ configuration: TLSConfiguration, for socket: SocketHandle, callbacks: ConnectionCallbacks, deadline: ContinuousClock.Instant, operation: @autoclosure () -> String) async throws -> TLSConfiguration? {
        guard isNeeded(callbacks.settings),
              let choice = try await choose(on: socket, settings: callbacks.settings, deadline: deadline, operation: operation()) else { return nil }
        var chosen = configuration
        switch choice {
        case .identity(let name, let identity):
            callbacks.preselectedServerName.withLock { $0 = name }
            chosen.identity = identity
        case .afterDecryption(let publicName, let identity):
            callbacks.choosesIdentityAfterDecryption.store(true, ordering: .relaxed)
            if let publicName, let identity {
                callbacks.preselectedServerName.withLock { $0 = publicName }
                chosen.identity = identity
            }
        }
        return chosen
    }

    /// Reads the ClientHello into the read-ahead layer of `socket` (plain
    /// TCP with the layer pushed, nonblocking) and returns the identity for
    /// its SNI name: the name map first, then the selector. Nil when the
    /// ClientHello names no server, names one with no identity of its own,
    /// or cannot be read; NSS then sees the default identity and judges the
    /// bytes itself.
    ///
    /// - Throws: ``TLSError/Kind/handshakeTimedOut`` at `deadline`,
    ///   `CancellationError`, or ``TLSError/Kind/closed``.
    static func choose(on socket: SocketHandle, settings: ConnectionSettings, deadline: ContinuousClock.Instant, operation: @autoclosure () -> String) async throws -> Choice? {
        // Waits below are for more of the ClientHello, not for the part held.
        try socket.withFD(operation()) { ReadAheadLayer.setCollecting($0, true) }
        defer { _ = try? socket.withFD(operation()) { ReadAheadLayer.setCollecting($0, false) } }
        while true {
            let step = try socket.withFD(operation()) { fd -> (ClientHelloServerName.Parse, readMore: Int32, error: PRErrorCode) in
                let parsed = ClientHelloServerName.parse(ReadAheadLayer.buffered(fd))
                guard parsed == .needMore else { return (parsed, 0, 0) }
                let read = ReadAheadLayer.readMore(fd)
                return (parsed, read, read < 0 ? PR_GetError() : 0)
            }
            switch step.0 {
            case .encrypted(let publicName) where settings.decryptsClientHello:
                let identity = publicName.flatMap { settings.serverNameIdentities.identity(for: $0) ?? settings.serverNameSelector?($0) }
                return .afterDecryption(publicName: identity == nil ? nil : publicName, identity)
            case .complete(let name?), .encrypted(let name?):
                let fixed = settings.serverNameIdentities.identity(for: name)
                return (fixed ?? settings.serverNameSelector?(name)).map { .identity(name: name, $0) }
            case .complete(serverName: nil), .encrypted(outerServerName: nil), .unreadable:
                return nil
            case .needMore:
                if step.readMore > 0 { continue }
                // End of stream, or an error NSS will meet again and report.
                guard step.readMore < 0, step.error == NSSErrors.wouldBlock else { return nil }
                // Nothing more can come in: the buffer is full.
                if try socket.withFD(operation(), { ReadAheadLayer.buffered($0).count }) >= ReadAheadLayer.capacity { return nil }
            }
            switch await socket.wait(for: .read, deadline: deadline) {
            case .ready, .interrupted:
                continue
            case .timedOut:
                throw TLSError(kind: .handshakeTimedOut, operation: operation(), message: "no complete ClientHello arrived in time")
            case .cancelled:
                throw CancellationError()
            case .closed, .shutDown:
                throw TLSError(kind: .closed, operation: operation(), message: "the socket was closed before the ClientHello arrived")
            }
        }
    }
}
