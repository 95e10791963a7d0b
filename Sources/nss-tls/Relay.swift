import AsyncNSS

/// Copies standard input to a connection and the connection to standard
/// output, both at once, for `connect`.
struct Relay {
    let connection: TLSConnection

    /// How a relay ended.
    enum Ending {
        /// The server closed with close_notify and everything reached standard output.
        case clean
        /// The server closed TCP without close_notify.
        case truncated
        /// Reading, writing or a standard stream failed.
        case failed(any Error)
    }

    private enum Event {
        /// Standard input ended and close_notify was sent.
        case uploadFinished
        case uploadFailed(any Error)
        case downloadEnded(Ending)
    }

    /// Runs until the server closes its side. Standard input's end half-closes
    /// the connection; reading goes on until the server is done.
    func run() async -> Ending {
        await withTaskGroup(of: Event.self) { group in
            group.addTask { await upload() }
            group.addTask { await download() }
            var uploadError: (any Error)?
            while let event = await group.next() {
                switch event {
                case .uploadFinished:
                    continue
                case .uploadFailed(let error):
                    // The download usually reports why the connection broke; wait for it.
                    uploadError = error
                case .downloadEnded(let ending):
                    // The server is done; stop reading standard input.
                    group.cancelAll()
                    if case .clean = ending, let uploadError { return .failed(uploadError) }
                    return ending
                }
            }
            return uploadError.map(Ending.failed) ?? .clean
        }
    }

    private func upload() async -> Event {
        do {
            for try await chunk in StandardInput.start() {
                try await connection.write(chunk)
            }
            try Task.checkCancellation()
            try await connection.shutdownOutput()
            return .uploadFinished
        } catch {
            return .uploadFailed(error)
        }
    }

    private func download() async -> Event {
        do {
            for try await chunk in connection.inbound {
                try StandardOutput.write(chunk)
            }
            return .downloadEnded(.clean)
        } catch let error as TLSError where error.kind == .truncated {
            return .downloadEnded(.truncated)
        } catch {
            return .downloadEnded(.failed(error))
        }
    }
}
