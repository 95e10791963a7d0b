internal import CNSS
import Synchronization

/// The one owner of an NSS object such as a `CERTCertificate` or a
/// `SECKEYPrivateKey`.
///
/// The pointer is destroyed in `deinit`, or earlier by ``NSSRuntime/shutdown()``;
/// after that ``withPointer(_:_:)`` throws instead of touching freed memory.
// @unchecked Sendable: the pointer lives inside the `Locked` and is only
// used while holding its lock; `destroy` is a plain C free function. NSS
// certificates and keys may be used from any thread (they are reference
// counted and internally locked).
final class NSSObject<Pointee>: RuntimeResource, @unchecked Sendable {
    private let pointer: Locked<UnsafeMutablePointer<Pointee>?>
    private let destroy: (UnsafeMutablePointer<Pointee>) -> Void
    private let services: RuntimeServices

    init(_ pointer: UnsafeMutablePointer<Pointee>, services: RuntimeServices, destroy: @escaping (UnsafeMutablePointer<Pointee>) -> Void) {
        self.pointer = Locked(pointer)
        self.destroy = destroy
        self.services = services
        services.resources.add(self)
    }

    deinit {
        if let pointer = pointer.withLock({ $0 }) {
            destroy(pointer)
        }
        // Without this the registry kept an entry (and a weak reference's side
        // table) for every certificate and key ever loaded.
        services.resources.remove(ObjectIdentifier(self))
    }

    /// Whether the object still holds its NSS pointer (shutdown has not released it).
    var isLive: Bool { pointer.withLock { $0 != nil } }

    /// Runs `body` with the live pointer.
    func withPointer<Result>(_ operation: @autoclosure () -> String, _ body: (UnsafeMutablePointer<Pointee>) throws -> Result) throws -> Result {
        try pointer.withLock { pointer in
            guard let pointer else {
                throw TLSError(kind: .runtime, operation: operation(), message: "this certificate or key was released by NSSRuntime.shutdown(); load it again")
            }
            return try body(pointer)
        }
    }

    func releaseForShutdown() async {
        let taken = pointer.withLock { pointer -> UnsafeMutablePointer<Pointee>? in
            defer { pointer = nil }
            return pointer
        }
        if let taken { destroy(taken) }
    }
}

typealias CertificateObject = NSSObject<CERTCertificate>
typealias PrivateKeyObject = NSSObject<SECKEYPrivateKey>

extension NSSObject where Pointee == CERTCertificate {
    /// Takes ownership of a certificate reference.
    convenience init(certificate: UnsafeMutablePointer<CERTCertificate>, services: RuntimeServices) {
        self.init(certificate, services: services) { CERT_DestroyCertificate($0) }
    }
}

extension NSSObject where Pointee == SECKEYPrivateKey {
    /// Takes ownership of a private key reference.
    convenience init(privateKey: UnsafeMutablePointer<SECKEYPrivateKey>, services: RuntimeServices) {
        self.init(privateKey, services: services) { SECKEY_DestroyPrivateKey($0) }
    }
}
