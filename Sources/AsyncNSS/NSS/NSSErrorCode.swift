internal import CNSS

extension TLSError {
    /// Builds an error from the calling thread's `PR_GetError()`.
    ///
    /// - Important: Call it in the same synchronous code as the failing NSS
    ///   call, with no `await` in between: the NSPR error is thread-local.
    static func fromLastNSSError(_ operation: String) -> TLSError {
        fromNSSCode(PR_GetError(), operation)
    }

    /// Builds an error for an NSPR/NSS error code.
    static func fromNSSCode(_ code: PRErrorCode, _ operation: String) -> TLSError {
        TLSError(
            kind: .nss,
            operation: operation,
            nssCode: code,
            nssName: NSSErrorText.name(code),
            message: NSSErrorText.text(code)
        )
    }
}

/// Names and texts of NSPR/NSS error codes.
enum NSSErrorText {
    static func name(_ code: PRErrorCode) -> String {
        if let name = PR_ErrorToName(code) {
            return String(cString: name)
        }
        return "error \(code)"
    }

    static func text(_ code: PRErrorCode) -> String {
        if let text = PR_ErrorToString(code, 0) {
            let string = String(cString: text)
            if !string.isEmpty { return string }
        }
        return "unknown NSS error"
    }
}

/// Well-known NSPR/NSS error codes, as `PRErrorCode`.
enum NSSErrors {
    static let wouldBlock = cnss_would_block_error()
    static let inProgress = cnss_in_progress_error()
    static let fileTableFull = PRErrorCode(PR_PROC_DESC_TABLE_FULL_ERROR)
    static let systemFileTableFull = PRErrorCode(PR_SYS_DESC_TABLE_FULL_ERROR)
    static let insufficientResources = PRErrorCode(PR_INSUFFICIENT_RESOURCES_ERROR)
    static let renegotiationNotAllowed = PRErrorCode(SSL_ERROR_RENEGOTIATION_NOT_ALLOWED.rawValue)
    static let missingPostHandshakeAuthExtension = PRErrorCode(SSL_ERROR_MISSING_POST_HANDSHAKE_AUTH_EXTENSION.rawValue)
    static let invalidArguments = PRErrorCode(SEC_ERROR_INVALID_ARGS.rawValue)
    static let badPassword = PRErrorCode(SEC_ERROR_BAD_PASSWORD.rawValue)
}
