import AsyncNSS
import Testing

extension Integration {
    @Suite("NSS runtime initialisation and cleanup")
    struct RuntimeTests {
        @Test("shutdown closes listeners and connections, and the runtime starts again")
        func shutdownAndRestart() async throws {
            try await withTimeout(seconds: 60) {
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                // The shutdown ends the server's pending read with `closed`.
                let server = Task { await EchoServer.serveAll(listener, expected: { ($0 as? TLSError)?.kind == .closed }) }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: try await TestIdentities.clientConfiguration())
                try await client.write([1])
                var iterator = client.inbound.makeAsyncIterator()
                #expect(try await iterator.next() == [1])
                let reader = Task { () -> (any Error)? in
                    do {
                        while try await iterator.next() != nil {}
                        return nil
                    } catch {
                        return error
                    }
                }
                #expect(NSSRuntime.isInitialized)

                try await NSSRuntime.shutdown()
                await TestIdentities.reset()
                #expect(!NSSRuntime.isInitialized)
                // Everything the runtime owned is closed: the listener's sequence
                // ends and the client's pending read ends, with `.closed` when the
                // client's own socket went first, or cleanly when the server's
                // close_notify arrived before.
                await server.value
                let readError = await reader.value
                #expect(readError == nil || (readError as? TLSError)?.kind == .closed, "\(String(describing: readError))")
                await #expect(throws: TLSError.self) { try await client.write([2]) }

                // The runtime comes back on first use.
                let again = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                #expect(NSSRuntime.isInitialized)
                let serverAgain = Task { await EchoServer.serveAll(again) }
                let clientAgain = try await TLSConnection.connect(host: "127.0.0.1", port: again.port, configuration: try await TestIdentities.clientConfiguration())
                try await clientAgain.write([3])
                var second = clientAgain.inbound.makeAsyncIterator()
                #expect(try await second.next() == [3])
                await clientAgain.close()
                await again.close()
                await serverAgain.value
            }
        }

        /// What a dropped owner leaves behind must not keep NSS busy: sockets
        /// still closing in the background (``DroppedSocket``) are waited
        /// for, and certificates and keys are gone with their identities.
        @Test("owners of every kind dropped without close(), then an immediate shutdown succeeds",
              .enabled(if: ExternalTool.isInstalled("certutil", "pk12util"), "needs the NSS database of TestPKI"))
        func shutdownRightAfterDroppedOwners() async throws {
            try await withTimeout(seconds: 60) {
                let pki = try await TestPKI.shared()
                try await Self.useAndDropOwners(pki)
                // No close() anywhere above: shut down at once.
                try await NSSRuntime.shutdown()
                await TestIdentities.reset()
                #expect(!NSSRuntime.isInitialized)
                // And the runtime comes back.
                let listener = try await TLSListener.bind(port: 0, configuration: try await TestIdentities.serverConfiguration())
                #expect(NSSRuntime.isInitialized)
                await listener.close()
            }
        }

        /// Opens a listener, a client and its accepted connection for each
        /// identity kind (PEM, NSS database, self-signed, and a key on a
        /// PKCS#11 token when SoftHSM2 is installed), and a TCP listener and
        /// connection, and lets all of them go without close().
        private static func useAndDropOwners(_ pki: TestPKI) async throws {
            var identities = [
                try await TLSIdentity.pem(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey),
                try await TLSIdentity.database(pki.database, nickname: "server", password: TestPKI.databasePassword),
                try await TLSIdentity.selfSigned(),
            ]
            if TestToken.isAvailable {
                let token = try await TestToken.shared()
                identities.append(try await TLSIdentity.pkcs11(
                    keyURI: TestToken.keyURI, modulePath: token.modulePath,
                    certificateChainFile: pki.serverCertificate, pin: TestToken.pin
                ))
            }
            for identity in identities {
                let listener = try await TLSListener.bind(port: 0, configuration: .makeServerConfiguration(identity: identity))
                let accepted = Task { () -> TLSConnection? in
                    for try await connection in listener { return connection }
                    return nil
                }
                let client = try await TLSConnection.connect(host: "127.0.0.1", port: listener.port, configuration: .makeClientConfiguration(trust: .insecureNoVerification))
                try await client.write([1])
                let server = try #require(try await accepted.value)
                #expect(try await server.receive() == [1])
            }
            let plainListener = try await TCPListener.bind(port: 0)
            async let plainAccepted = plainListener.accept()
            let plainClient = try await TCPConnection.connect(host: "127.0.0.1", port: plainListener.port)
            try await plainClient.write([2])
            #expect(try await plainAccepted.receive() == [2])
        }
    }
}
