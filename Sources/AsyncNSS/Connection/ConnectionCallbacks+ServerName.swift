internal import CNSS
import Logging
import Synchronization

/// The SNI hook's answer on a server.
extension ConnectionCallbacks {
    /// Answers NSS's SNI hook for `name`. The identity for a name was chosen
    /// before NSS read the ClientHello (``ServerNamePreselection``), so
    /// here the name is only recorded: 0 when that identity is the one set
    /// up, else the unknown-name policy. A name with an identity of its own
    /// that was not chosen beforehand is refused rather than answered with
    /// the default identity.
    ///
    /// After an encrypted ClientHello (ECH), the name is known only here, and
    /// this sets up the identity for `name` (the name inside when NSS
    /// decrypted it, the public name when it could not). `SSL_ConfigServerCert`
    /// replaces the identity set up before when both have the same key type;
    /// with another key type NSS keeps both, and may present either.
    func selectIdentity(for name: String, on fd: UnsafeMutablePointer<PRFileDesc>) -> PRInt32 {
        if choosesIdentityAfterDecryption.load(ordering: .relaxed) {
            return setUpIdentityAfterDecryption(for: name, on: fd)
        }
        if let chosen = preselectedServerName.withLock({ $0 }), chosen.lowercased() == name.lowercased() {
            return 0
        }
        if settings.serverNameIdentities.identity(for: name) != nil {
            logger.debug("refusing a server name whose identity was not chosen before the handshake", metadata: ["sni": "\(name)"])
            return SSL_SNI_SEND_ALERT
        }
        return settings.unknownServerName == .reject ? SSL_SNI_SEND_ALERT : SSL_SNI_CURRENT_CONFIG_IS_USED
    }

    private func setUpIdentityAfterDecryption(for name: String, on fd: UnsafeMutablePointer<PRFileDesc>) -> PRInt32 {
        if let chosen = preselectedServerName.withLock({ $0 }), chosen.lowercased() == name.lowercased() {
            return 0
        }
        let named = settings.serverNameIdentities.identity(for: name) ?? settings.serverNameSelector?(name)
        guard let identity = named ?? (settings.unknownServerName == .reject ? nil : settings.defaultIdentity) else {
            return SSL_SNI_SEND_ALERT
        }
        do {
            try SSLSocketSetup.configureIdentity(identity, on: fd, "choosing the identity for \(name)")
        } catch {
            logger.info("could not set up the identity for a decrypted server name", metadata: ["sni": "\(name)", "error": "\(error)"])
            return SSL_SNI_SEND_ALERT
        }
        preselectedServerName.withLock { $0 = name }
        return 0
    }
}
