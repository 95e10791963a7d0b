@testable import AsyncNSS
internal import CNSS
import Testing

extension Integration {
    @Suite("Accept failures back off")
    struct AcceptFailureTests {
        /// A listening socket shut down under the listener makes every accept
        /// fail at once with EINVAL. Before the backoff the accept loop
        /// retried with no pause: hundreds of thousands of failures a second,
        /// a core at 100 % and a log line each.
        @Test("an accept error that repeats is retried with a growing pause, not in a spin")
        func repeatedAcceptErrorBacksOff() async throws {
            try await withTimeout(seconds: 30) {
                let (logger, log) = CapturingLogHandler.logger()
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration(), logger: logger)
                let server = Task { await EchoServer.serveAll(listener) }
                try await listener.listeningSocket.withFD("shutting down the listening socket") { fd in
                    #expect(PR_Shutdown(fd, PR_SHUTDOWN_BOTH) == PR_SUCCESS)
                }
                try await Task.sleep(for: .seconds(1))
                let failures = log.all.filter { $0.contains("accept failed") }
                // 5, 10, 20 … 640 ms: about 8 in the first second.
                #expect(failures.count >= 1, "the failure is logged")
                #expect(failures.count < 50, "\(failures.count) accept failures logged in one second")
                #expect(failures.first?.contains("PR_INVALID_ARGUMENT_ERROR") == true, "\(failures.first ?? "no line")")
                await listener.close()
                await server.value
            }
        }

        @Test("the backoff doubles from 5 ms and stops at a second")
        func backoffSchedule() {
            let pauses = (1...10).map { Acceptor.failureBackoff(afterFailures: $0) }
            #expect(pauses == [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000].map { Duration.milliseconds($0) })
        }
    }
}
