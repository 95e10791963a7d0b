// libFuzzer target for identity loading from PEM text, through the public
// API `TLSIdentity.pem(certificateChain:privateKey:)`: the PEM reader, NSS's
// import of each certificate and of the PKCS#8 key, and the check that the
// key matches the certificate.
//
// The input is the chain text, a NUL byte, then the key text. Without a NUL
// the same text is both, as in a file that holds the chain and the key.
// Besides "never traps", it checks that a loaded identity's leaf is the first
// certificate of the text, and that no error message repeats a line of the
// key's base64 (keys are never logged).
import AsyncNSS
import Dispatch
import Synchronization

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPEMIdentity(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let chain: String, key: String
    if let nul = bytes.firstIndex(of: 0) {
        chain = String(decoding: bytes[..<nul], as: UTF8.self)
        key = String(decoding: bytes[(nul + 1)...], as: UTF8.self)
    } else {
        chain = String(decoding: bytes, as: UTF8.self)
        key = chain
    }
    switch load(chain: chain, key: key) {
    case .success(let certificates):
        precondition(!certificates.isEmpty, "an identity without a certificate")
        precondition(certificates[0].pemRepresentation.contains("-----BEGIN CERTIFICATE-----"), "the leaf does not write out as PEM")
    case .failure(let error):
        guard let error = error as? TLSError else {
            preconditionFailure("loading threw something other than a TLSError: \(error)")
        }
        let message = error.description
        for line in keyBodyLines(key, quotable: chain + "\n" + key) {
            precondition(!message.contains(line), "an error message repeats a line of the key: \(message)")
        }
    }
    return 0
}

/// Runs the async loader from libFuzzer's synchronous callback. The callback
/// runs on libFuzzer's own thread, never on the cooperative pool, so blocking
/// it on a semaphore is safe.
func load(chain: String, key: String) -> Result<[TLSCertificate], any Error> {
    let outcome = Outcome()
    Task {
        do {
            let identity = try await TLSIdentity.pem(certificateChain: chain, privateKey: key)
            outcome.finish(.success(identity.certificateChain))
        } catch {
            outcome.finish(.failure(error))
        }
    }
    return outcome.wait()
}

final class Outcome: Sendable {
    private let result = Mutex<Result<[TLSCertificate], any Error>?>(nil)
    private let done = DispatchSemaphore(value: 0)

    func finish(_ value: sending Result<[TLSCertificate], any Error>) {
        result.withLock { $0 = value }
        done.signal()
    }

    func wait() -> Result<[TLSCertificate], any Error> {
        done.wait()
        return result.withLock { $0! }
    }
}

/// Lines of base64 long enough to be key material (24 characters and more),
/// leaving out any that also occur on a BEGIN or END line of either text
/// (`quotable`), where the fuzzer may have put them as a label that error
/// messages rightly quote. (The first run stopped on exactly that: the
/// public PKCS#8 prefix from the dictionary inside a label of the chain.)
func keyBodyLines(_ text: String, quotable: String) -> [Substring] {
    let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters() }
    let boundaries = quotable.split(whereSeparator: \.isNewline).filter { $0.contains("-----") }
    return lines.filter { line in
        line.count >= 24 && !line.contains("-----") && !line.contains(":")
            && !boundaries.contains { $0.contains(line) }
    }
}

extension Substring {
    func trimmingCharacters() -> Substring {
        var result = self
        while let first = result.first, first.isWhitespace { result = result.dropFirst() }
        while let last = result.last, last.isWhitespace { result = result.dropLast() }
        return result
    }
}
