import Synchronization
import Testing
@testable import AsyncNSS

@Suite("Key log: labels and the ClientHello's random", .timeLimit(.minutes(1)))
struct KeyLogTests {
    @Test("NSS's epochs and directions map to the NSS Key Log labels")
    func labels() {
        #expect(TLSKeyLog.label(epoch: 1, fromClient: true) == "CLIENT_EARLY_TRAFFIC_SECRET")
        #expect(TLSKeyLog.label(epoch: 1, fromClient: false) == nil)
        #expect(TLSKeyLog.label(epoch: 2, fromClient: true) == "CLIENT_HANDSHAKE_TRAFFIC_SECRET")
        #expect(TLSKeyLog.label(epoch: 2, fromClient: false) == "SERVER_HANDSHAKE_TRAFFIC_SECRET")
        #expect(TLSKeyLog.label(epoch: 3, fromClient: true) == "CLIENT_TRAFFIC_SECRET_0")
        #expect(TLSKeyLog.label(epoch: 4, fromClient: false) == "SERVER_TRAFFIC_SECRET_1")
        #expect(TLSKeyLog.label(epoch: 0, fromClient: true) == nil)
    }

    @Test("hex is lower case, two digits a byte")
    func hex() {
        #expect(TLSKeyLog.hex([0x00, 0x0F, 0xA0, 0xFF]) == "000fa0ff")
    }

    /// A ClientHello's first 43 bytes with `random`.
    func clientHelloStart(random: [UInt8]) -> [UInt8] {
        [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03] + random
    }

    @Test("the random is found across reads of any size, and only in a ClientHello")
    func randomAcrossChunks() {
        let random = (0..<32).map { UInt8($0 * 7 & 0xFF) }
        let stream = clientHelloStart(random: random) + [1, 2, 3]
        for chunk in [1, 5, 11, 43, 100] {
            let watch = ClientHelloWatch()
            watch.watching.store(true, ordering: .relaxed)
            var offset = 0
            while offset < stream.count {
                let piece = Array(stream[offset..<min(offset + chunk, stream.count)])
                piece.withUnsafeBytes { watch.observe($0.baseAddress!, count: $0.count, inbound: true) }
                offset += chunk
            }
            #expect(watch.random == random, "chunks of \(chunk)")
            let stillWatching = watch.watching.load(ordering: .relaxed)
            #expect(!stillWatching, "it stops watching once found")
        }
        // A ServerHello (type 2) is not a ClientHello.
        var serverHello = clientHelloStart(random: random)
        serverHello[5] = 0x02
        #expect(ClientHelloWatch.clientRandom(inPrefix: serverHello) == nil)
        #expect(ClientHelloWatch.clientRandom(inPrefix: Array(serverHello.prefix(42))) == nil)
    }

    @Test("nothing is kept while nobody watches")
    func notWatching() {
        let watch = ClientHelloWatch()
        let stream = clientHelloStart(random: Array(repeating: 9, count: 32))
        stream.withUnsafeBytes { watch.observe($0.baseAddress!, count: $0.count, inbound: false) }
        #expect(watch.random == nil)
    }
}
