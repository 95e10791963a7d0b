@testable import AsyncNSS
import Testing

@Suite("PKCS#11 URIs (RFC 7512)")
struct PKCS11KeyURITests {
    @Test("path and query attributes, percent-decoded; id as bytes")
    func attributes() throws {
        let uri = try PKCS11KeyURI.parse("pkcs11:token=Web%20HSM;manufacturer=ACME;model=M1;serial=42;object=server%3Bkey;id=%01%ff;type=private?pin-source=file:///run/pin&module-path=/usr/lib/p11.so")
        #expect(uri.token == "Web HSM")
        #expect(uri.manufacturer == "ACME")
        #expect(uri.model == "M1")
        #expect(uri.serial == "42")
        #expect(uri.object == "server;key")
        #expect(uri.id == [0x01, 0xFF])
        #expect(uri.pinSource == "file:///run/pin")
        #expect(uri.modulePath == "/usr/lib/p11.so")
        #expect(uri.pinValue == nil)
    }

    @Test("refused: not pkcs11:, no key named, type other than private, slot and library attributes",
          arguments: ["https://example.com", "pkcs11:token=web", "pkcs11:object=k;type=cert", "pkcs11:object=k;slot-id=3", "pkcs11:object=k;library-manufacturer=x"])
    func refused(text: String) {
        #expect(throws: TLSError.self) { try PKCS11KeyURI.parse(text) }
    }

    @Test("a token matches when every attribute the URI gives is equal")
    func tokenMatching() throws {
        let uri = try PKCS11KeyURI.parse("pkcs11:token=web;serial=42;object=k")
        #expect(uri.matchesToken(label: "web", manufacturer: "any", model: "any", serial: "42"))
        #expect(!uri.matchesToken(label: "web", manufacturer: "any", model: "any", serial: "43"))
        #expect(!uri.matchesToken(label: "web2", manufacturer: "any", model: "any", serial: "42"))
        let anyToken = try PKCS11KeyURI.parse("pkcs11:object=k")
        #expect(anyToken.matchesToken(label: "whatever", manufacturer: "", model: "", serial: ""))
    }

    @Test("a key matches on label, id or both")
    func keyMatching() throws {
        let both = try PKCS11KeyURI.parse("pkcs11:object=k;id=%01")
        #expect(both.matchesKey(label: "k", id: [1]))
        #expect(!both.matchesKey(label: "k", id: [2]))
        #expect(!both.matchesKey(label: nil, id: [1]))
        let byID = try PKCS11KeyURI.parse("pkcs11:id=%01")
        #expect(byID.matchesKey(label: "anything", id: [1]))
        #expect(!byID.matchesKey(label: "anything", id: nil))
    }

    @Test("the description for messages leaves the PIN out")
    func redacted() throws {
        let uri = try PKCS11KeyURI.parse("pkcs11:token=web;object=k;id=%0a?pin-value=secret")
        #expect(uri.pinValue == "secret")
        #expect(uri.redactedDescription == "pkcs11:token=web;object=k;id=%0A")
        #expect(!uri.redactedDescription.contains("secret"))
    }
}
