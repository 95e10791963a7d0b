internal import CNSS
import Synchronization

/// The C functions NSS calls back, one per hook that ``ConnectionCallbacks``
/// installs. They capture nothing: the connection's ``ConnectionCallbacks``
/// comes through the hook's argument.
enum NSSCallbackEntryPoints {
    static let handshakeCompletedCallback: SSLHandshakeCallback = { fd, argument in
        guard let fd, let callbacks = ConnectionCallbacks.from(argument) else { return }
        callbacks.handshakeCompleted(fd)
    }

    static let alertReceived: SSLAlertCallback = { _, argument, alert in
        guard let alert, let callbacks = ConnectionCallbacks.from(argument) else { return }
        switch alert.pointee.description {
        case 0: // close_notify
            callbacks.closeNotifyReceived.store(true, ordering: .releasing)
        case 100: // no_renegotiation
            callbacks.renegotiationRefused.store(true, ordering: .releasing)
        default:
            break
        }
    }

    static let alertSent: SSLAlertCallback = { _, argument, alert in
        guard let alert, let callbacks = ConnectionCallbacks.from(argument), alert.pointee.level == 2 else { return }
        callbacks.fatalAlertSent.store(Int(alert.pointee.description), ordering: .releasing)
    }

    /// Records the SNI name and answers for the identity chosen for it.
    static let serverNameReceived: SSLSNISocketConfig = { fd, names, count, argument in
        guard let fd, let callbacks = ConnectionCallbacks.from(argument),
              let names, count > 0, let data = names.pointee.data,
              names.pointee.len > 0, names.pointee.len <= 255 else { return SSL_SNI_CURRENT_CONFIG_IS_USED }
        let name = String(decoding: UnsafeBufferPointer(start: data, count: Int(names.pointee.len)), as: UTF8.self)
        callbacks.requestedServerName.withLock { $0 = name }
        return callbacks.selectIdentity(for: name, on: fd)
    }

    static let authenticateCertificate: SSLAuthCertificate = { argument, fd, checkSignature, isServer in
        guard let fd, let callbacks = ConnectionCallbacks.from(argument) else { return SECFailure }
        return callbacks.authenticate(fd, checkSignature: checkSignature, isServer: isServer)
    }

    static let provideClientCertificate: SSLGetClientAuthData = { argument, _, caNames, certificateOut, keyOut in
        guard let certificateOut, let keyOut, let callbacks = ConnectionCallbacks.from(argument) else { return SECFailure }
        return callbacks.clientCertificate(caNames, certificateOut, keyOut)
    }

    static let badCertificateReceived: SSLBadCertHandler = { argument, fd in
        guard let fd, let callbacks = ConnectionCallbacks.from(argument) else { return SECFailure }
        return callbacks.handleBadCertificate(fd)
    }

    static let secretDerived: SSLSecretCallback = { fd, epoch, direction, secret, argument in
        guard let fd, let secret, let callbacks = ConnectionCallbacks.from(argument) else { return }
        callbacks.recordSecret(fd, epoch: epoch, written: direction == ssl_secret_write, secret: secret)
    }
}
