internal import CNSS

/// The password of an NSS database or PKCS#11 token, handed to NSS as the
/// `wincx` argument of calls that may need to log in.
final class PasswordSource: Sendable {
    let password: String
    init(_ password: String) { self.password = password }

    /// Runs `body` with an argument for NSS's `wincx`/`pwArg` parameters that
    /// the password callback understands.
    func withArgument<Result>(_ body: (UnsafeMutableRawPointer) throws -> Result) rethrows -> Result {
        try withExtendedLifetime(self) {
            try body(Unmanaged.passUnretained(self).toOpaque())
        }
    }
}

/// NSS's password callback (`PK11_SetPasswordFunc`), installed at init.
///
/// The argument is a ``PasswordSource``: AsyncNSS passes one, or NULL, to every
/// NSS call that takes a password argument. A retry returns NULL, so a wrong
/// password fails at once instead of looping.
let passwordCallback: PK11PasswordFunc = { _, retry, argument in
    guard retry == PR_FALSE, let argument else { return nil }
    let source = Unmanaged<PasswordSource>.fromOpaque(argument).takeUnretainedValue()
    return PORT_Strdup(source.password)
}
