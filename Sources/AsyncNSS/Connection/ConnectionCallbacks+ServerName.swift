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
    func selectIdentity(for name: String) -> PRInt32 {
        if let chosen = preselectedServerName.withLock({ $0 }), chosen.lowercased() == name.lowercased() {
            return 0
        }
        if settings.serverNameIdentities.identity(for: name) != nil {
            logger.debug("refusing a server name whose identity was not chosen before the handshake", metadata: ["sni": "\(name)"])
            return SSL_SNI_SEND_ALERT
        }
        return settings.unknownServerName == .reject ? SSL_SNI_SEND_ALERT : SSL_SNI_CURRENT_CONFIG_IS_USED
    }
}
