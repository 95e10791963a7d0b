import AsyncNSS
import Foundation
import Testing

extension Integration {
    @Suite("Large transfers, byte for byte")
    struct TransferTests {
        static let size = 64 * 1024 * 1024

        @Test("64 MiB each way at once, echoed through our server", arguments: [TLSVersion.tls12, .tls13])
        func largeEcho(version: TLSVersion) async throws {
            try await withTimeout(seconds: 150) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(min: version, max: version))
                let server = Task { try await EchoServer.serveOne(listener) }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                #expect(client.info.protocolVersion == version)
                let pattern = TransferPattern()

                async let sent: Void = {
                    var offset = 0
                    while offset < Self.size {
                        let chunk = pattern.bytes(at: offset, count: min(256 * 1024, Self.size - offset))
                        try await client.write(chunk)
                        offset += chunk.count
                    }
                }()
                var verifier = TransferVerifier(pattern: pattern)
                for try await chunk in client.inbound {
                    try verifier.consume(chunk)
                    if verifier.received >= Self.size { break }
                }
                try await sent
                #expect(verifier.received == Self.size)
                #expect(verifier.mismatchAt == nil)
                await client.close()
                try await server.value
                await listener.close()
            }
        }

        /// Hundreds of small records wait in the kernel, so one read of the
        /// read-ahead layer takes many of them; the client then reads a few
        /// bytes at a time, and the close_notify behind the last record must
        /// end the stream cleanly (not as truncation).
        @Test("small records read a few bytes at a time, then close_notify", arguments: [TLSVersion.tls12, .tls13])
        func smallReadsThenClose(version: TLSVersion) async throws {
            try await withTimeout(seconds: 60) {
                let total = 100_000
                let pattern = TransferPattern()
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(min: version, max: version))
                let server = Task {
                    for try await connection in listener {
                        var offset = 0
                        while offset < total {
                            let count = min(97 + offset % 1000, total - offset)
                            try await connection.write(pattern.bytes(at: offset, count: count))
                            offset += count
                        }
                        await connection.close()
                        return
                    }
                }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                // Let the records pile up (the server may also wait for room).
                try await Task.sleep(for: .milliseconds(300))
                var verifier = TransferVerifier(pattern: pattern)
                while let chunk = try await client.receive(maxBytes: 7) {
                    #expect(chunk.count <= 7)
                    try verifier.consume(chunk)
                }
                #expect(verifier.received == total)
                #expect(verifier.mismatchAt == nil)
                try await server.value
                await client.close()
                await listener.close()
            }
        }
    }
}

/// A deterministic byte stream where a lost, repeated or reordered chunk shows up.
struct TransferPattern: Sendable {
    static let blockSize = 1 << 20
    private let base: [UInt8]

    init(seed: UInt64 = 0x5EED) {
        var state = seed
        var bytes = [UInt8](repeating: 0, count: Self.blockSize)
        for index in 0..<bytes.count where index % 8 == 0 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            withUnsafeBytes(of: z) { word in
                for offset in 0..<8 where index + offset < bytes.count { bytes[index + offset] = word[offset] }
            }
        }
        base = bytes
    }

    /// Block `n` is the base block rotated by a block-specific amount.
    func bytes(at offset: Int, count: Int) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count)
        var position = offset
        while result.count < count {
            let block = position / Self.blockSize
            let inBlock = position % Self.blockSize
            let rotation = (block * 4099) % Self.blockSize
            let start = (inBlock + rotation) % Self.blockSize
            let take = min(count - result.count, Self.blockSize - inBlock, Self.blockSize - start)
            result.append(contentsOf: base[start..<(start + take)])
            position += take
        }
        return result
    }
}

struct TransferVerifier {
    let pattern: TransferPattern
    private(set) var received = 0
    private(set) var mismatchAt: Int? = nil

    init(pattern: TransferPattern) { self.pattern = pattern }

    mutating func consume(_ chunk: [UInt8]) throws {
        let expected = pattern.bytes(at: received, count: chunk.count)
        let equal = chunk.count == expected.count && chunk.withUnsafeBytes { actual in
            expected.withUnsafeBytes { wanted in
                guard let left = actual.baseAddress, let right = wanted.baseAddress else { return actual.count == wanted.count }
                return memcmp(left, right, actual.count) == 0
            }
        }
        if !equal, mismatchAt == nil { mismatchAt = received }
        received += chunk.count
    }
}
