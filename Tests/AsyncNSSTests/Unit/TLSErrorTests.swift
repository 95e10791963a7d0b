import Testing
@testable import AsyncNSS

@Suite("TLSError", .timeLimit(.minutes(1)))
struct TLSErrorTests {
    let badDomain = TLSError(
        kind: .nss, operation: "handshake with 127.0.0.1:443", nssCode: -12276,
        nssName: "SSL_ERROR_BAD_CERT_DOMAIN", message: "Unable to communicate securely with peer: requested domain name does not match the server's certificate."
    )

    @Test("with an NSS name the description reads operation: NAME: text")
    func descriptionWithName() {
        #expect(badDomain.description == "handshake with 127.0.0.1:443: SSL_ERROR_BAD_CERT_DOMAIN: Unable to communicate securely with peer: requested domain name does not match the server's certificate.")
        #expect("\(badDomain)" == badDomain.description)
        #expect(String(describing: badDomain) == badDomain.description)
    }

    @Test("without a name the description reads operation: text")
    func descriptionWithoutName() {
        let error = TLSError(kind: .closed, operation: "reading from example.com:443", message: "the connection is closed")
        #expect(error.description == "reading from example.com:443: the connection is closed")
        #expect(error.nssCode == nil)
        #expect(error.nssName == nil)
    }

    @Test("a code without a name is not shown")
    func codeWithoutName() {
        let error = TLSError(kind: .nss, operation: "writing", nssCode: -5961, message: "reset")
        #expect(error.description == "writing: reset")
    }

    @Test("the initializer keeps every field")
    func fields() {
        #expect(badDomain.kind == .nss)
        #expect(badDomain.operation == "handshake with 127.0.0.1:443")
        #expect(badDomain.nssCode == -12276)
        #expect(badDomain.nssName == "SSL_ERROR_BAD_CERT_DOMAIN")
        #expect(badDomain.message.hasPrefix("Unable to communicate"))
    }

    @Test("during replaces the operation and nothing else")
    func during() {
        let moved = badDomain.during("connecting to example.com:443")
        #expect(moved.operation == "connecting to example.com:443")
        #expect(moved.kind == badDomain.kind)
        #expect(moved.nssCode == badDomain.nssCode)
        #expect(moved.nssName == badDomain.nssName)
        #expect(moved.message == badDomain.message)
        #expect(moved.description.hasPrefix("connecting to example.com:443: SSL_ERROR_BAD_CERT_DOMAIN: "))
        #expect(moved != badDomain)
        #expect(badDomain.operation == "handshake with 127.0.0.1:443", "the original is unchanged")
    }

    @Test("kinds are distinct, compare with ==, and describe themselves")
    func kinds() {
        let kinds: [(TLSError.Kind, String)] = [
            (.nss, "nss"), (.invalidIdentity, "invalidIdentity"), (.invalidConfiguration, "invalidConfiguration"),
            (.handshakeTimedOut, "handshakeTimedOut"), (.closed, "closed"), (.nameResolution, "nameResolution"),
            (.truncated, "truncated"), (.concurrentOperation, "concurrentOperation"), (.runtime, "runtime"),
        ]
        for (kind, name) in kinds { #expect(kind.description == name) }
        #expect(Set(kinds.map(\.0)).count == kinds.count)
        #expect(TLSError.Kind.closed == .closed)
        #expect(TLSError.Kind.closed != .truncated)
    }

    @Test("errors are equal only when every field is")
    func equality() {
        var other = badDomain
        #expect(other == badDomain)
        other.message = "different"
        #expect(other != badDomain)
        var kindChanged = badDomain
        kindChanged.kind = .runtime
        #expect(kindChanged != badDomain)
        #expect(Set([badDomain, badDomain, other]).count == 2)
    }
}
