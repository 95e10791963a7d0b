internal import CNSS

/// Logs in to NSS databases and PKCS#11 tokens, once per token.
///
/// A token stays logged in for the runtime's life, so handshakes sign with
/// its keys without asking again. A later load that gives a secret is checked
/// against the one that logged in, here and not on the token: NSS's
/// `PK11_CheckUserPassword` logs the token out when the secret is wrong, which
/// would break every identity already using it (and spend an HSM's retry
/// counter).
final class TokenLogins: Sendable {
    /// The secret that logged in, by "module id:slot id".
    private let secrets = Locked<[String: String]>([:])

    /// What to say when a login fails or is impossible.
    struct Messages {
        /// The token needs a secret and none was given.
        var missing: String
        /// Hint after a refused secret.
        var wrong: String
    }

    func logIn(_ slot: OpaquePointer, secret: String?, operation: String, messages: Messages) throws {
        guard PK11_NeedLogin(slot) != PR_FALSE else { return }
        let key = "\(PK11_GetModuleID(slot)):\(PK11_GetSlotID(slot))"
        try secrets.withLock { secrets in
            if PK11_IsLoggedIn(slot, nil) != PR_FALSE {
                // Logged in before, by this runtime or by NSS itself.
                if let secret, let known = secrets[key], known != secret {
                    var error = TLSError.fromNSSCode(NSSErrors.badPassword, operation).asInvalidIdentity
                    error.message = "the token is already unlocked with a different secret (\(messages.wrong))"
                    throw error
                }
                return
            }
            guard let secret else {
                throw TLSError(kind: .invalidIdentity, operation: operation, message: messages.missing)
            }
            // The password callback answers once: a wrong secret fails at once.
            let source = PasswordSource(secret)
            guard source.withArgument({ PK11_Authenticate(slot, PR_TRUE, $0) }) == SECSuccess else {
                throw TLSError.fromLastNSSError(operation).withHint(messages.wrong).asInvalidIdentity
            }
            secrets[key] = secret
        }
    }

    /// Forgets every login; the runtime calls it when it closes the tokens.
    func forgetAll() {
        secrets.withLock { $0.removeAll() }
    }
}
