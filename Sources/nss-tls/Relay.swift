import AsyncNSS
import Synchronization

/// Copies standard input to a connection and the connection to standard
/// output, both at once, for `connect`.
struct Relay {
    let connection: TLSConnection

    /// How a relay ended.
    enum Ending {
        /// The server closed with close_notify and everything reached standard
        /// output. `unsentInput` tells why some of standard input could not be
        /// sent, if the server stopped reading first.
        case clean(unsentInput: (any Error)?)
        /// The server closed TCP without close_notify.
        case truncated
        /// Reading, writing or a standard stream failed.
        case failed(any Error)
    }

    private enum Event {
        /// Standard input ended and close_notify was sent (or could not be
        /// sent because the server had closed already).
        case uploadFinished
        /// Sending standard input failed.
        case uploadFailed(any Error)
        /// Reading standard input failed.
        case inputFailed(any Error)
        case downloadEnded(Ending)
    }

    /// Runs until the server closes its side. Standard input's end half-closes
    /// the connection; reading goes on until the server is done.
    func run() async -> Ending {
        let progress = UploadProgress()
        return await withTaskGroup(of: Event.self) { group in
            group.addTask { await upload(progress) }
            group.addTask { await download() }
            var uploadError: (any Error)?
            var uploadDone = false
            while let event = await group.next() {
                switch event {
                case .uploadFinished:
                    uploadDone = true
                case .uploadFailed(let error):
                    // The server may have closed; the download tells how.
                    uploadError = error
                    uploadDone = true
                case .inputFailed(let error):
                    group.cancelAll()
                    return .failed(error)
                case .downloadEnded(let ending):
                    // The server is done; stop reading standard input.
                    group.cancelAll()
                    guard case .clean = ending else { return ending }
                    if let uploadError { return .clean(unsentInput: uploadError) }
                    // Standard input had not ended: whatever was still to come is unsent.
                    // (The upload's own event may still be on its way after the
                    // server answered our close_notify, so ask `progress`.)
                    if !uploadDone, !progress.allSent { return .clean(unsentInput: InputNotFinished()) }
                    return ending
                }
            }
            return .clean(unsentInput: uploadError)
        }
    }

    private func upload(_ progress: UploadProgress) async -> Event {
        do {
            for try await chunk in StandardInput.start() {
                do {
                    try await connection.write(chunk)
                } catch {
                    return .uploadFailed(error)
                }
            }
        } catch {
            return Task.isCancelled ? .uploadFinished : .inputFailed(error)
        }
        if Task.isCancelled { return .uploadFinished }
        progress.markAllSent()
        // Fails harmlessly when the server has closed the connection already.
        try? await connection.shutdownOutput()
        return .uploadFinished
    }

    private func download() async -> Event {
        let output = StandardOutputWriter()
        defer { output.finish() }
        do {
            for try await chunk in connection.inbound {
                try await output.write(chunk)
            }
            return .downloadEnded(.clean(unsentInput: nil))
        } catch let error as TLSError where error.kind == .truncated {
            return .downloadEnded(.truncated)
        } catch {
            return .downloadEnded(.failed(error))
        }
    }
}

/// Whether all of standard input was written, set before close_notify is
/// sent: the server can answer that close_notify before the upload task's
/// event reaches `run`.
final class UploadProgress: Sendable {
    private let sent = Atomic<Bool>(false)
    func markAllSent() { sent.store(true, ordering: .releasing) }
    var allSent: Bool { sent.load(ordering: .acquiring) }
}

/// The server closed while standard input was still being read or sent.
struct InputNotFinished: Error, CustomStringConvertible {
    var description: String { "standard input had not ended when the server closed" }
}
