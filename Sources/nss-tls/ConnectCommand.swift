import ArgumentParser
import AsyncNSS

/// `nss-tls connect`: a TLS client that copies standard input to the server
/// and the server's data to standard output.
struct ConnectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Connect to a TLS server and copy standard input to it and its data to standard output.",
        discussion: """
            The server's certificate is verified against the system roots unless \
            --ca, --db or --insecure says otherwise, and its name against \
            --server-name (or HOST). The negotiated parameters are printed on \
            standard error. When standard input ends, the client sends close_notify \
            and keeps reading (a TLS half-close); it stops when the server closes.

            Exit codes:
              0   the server closed the connection with close_notify
              1   connecting, the handshake or the transfer failed; the NSS
                  error name and text are printed (SSL_ERROR_BAD_CERT_DOMAIN, ...)
              3   the server closed TCP without close_notify (data may be cut off)
              64  invalid arguments
            """
    )

    @Argument(
        help: ArgumentHelp("The server: localhost:8443, 127.0.0.1:8443 or [::1]:8443.", valueName: "host:port"),
        transform: ConnectCommand.parseAddress
    )
    var address: HostAndPort

    @Option(name: .customLong("server-name"), help: ArgumentHelp("The name to send as SNI and to check the certificate against (default: HOST).", valueName: "name"))
    var serverName: String?

    @Option(help: ArgumentHelp("Trust only the CA certificates of this PEM file.", valueName: "pem-file"))
    var ca: String?

    @Option(help: ArgumentHelp("Trust the CA certificates of this NSS database directory.", valueName: "dir"))
    var db: String?

    @Flag(help: "Do not verify the server's certificate or name (for testing only).")
    var insecure = false

    @Option(help: ArgumentHelp("A PEM client certificate chain to present if the server asks (with --key).", valueName: "pem-file"))
    var cert: String?

    @Option(help: ArgumentHelp("The PKCS#8 PEM private key of --cert.", valueName: "pem-file"))
    var key: String?

    @Option(help: ArgumentHelp("Check the server's certificate for revocation: off; staple (the server must staple a good OCSP response); ocsp (its staple, or else its OCSP responder). Both fail hard. The server's OCSP staple is printed in any case.", valueName: "policy"))
    var revocation = RevocationArgument.off

    @Option(help: ArgumentHelp("Check every certificate of the server's chain against this CRL file, DER or PEM (repeatable); a certificate whose issuer has no CRL here fails. Excludes --revocation.", valueName: "file"))
    var crl: [String] = []

    @Option(help: ArgumentHelp("Encrypt the ClientHello (ECH) with this base64 ECHConfigList, the ech= value of the server's DNS HTTPS record; only its public name goes in the clear. Fails unless the server accepts ECH.", valueName: "base64"))
    var ech: String?

    @OptionGroup var tls: TLSOptions

    func validate() throws {
        if let ech, (try? EncryptedClientHelloKeys.configList(base64: ech)) == nil {
            throw ValidationError("--ech is not the base64 of an ECHConfigList (the ech= value of a DNS HTTPS record).")
        }
        if !crl.isEmpty, revocation != .off {
            throw ValidationError("--crl and --revocation \(revocation) exclude each other: choose one way to check revocation.")
        }
        if insecure, !crl.isEmpty || revocation != .off {
            throw ValidationError("--insecure verifies nothing, so it cannot check revocation either.")
        }
        let trustFlags = [ca.map { _ in "--ca" }, db.map { _ in "--db" }, insecure ? "--insecure" : nil].compactMap { $0 }
        if trustFlags.count > 1 {
            throw ValidationError("\(trustFlags.joined(separator: ", ")) exclude each other: choose one way to trust the server.")
        }
        switch (cert, key) {
        case (.some, nil): throw ValidationError("--cert needs --key.")
        case (nil, .some): throw ValidationError("--key needs --cert.")
        default: break
        }
        if let serverName, serverName.isEmpty || serverName.contains(where: \.isWhitespace) {
            throw ValidationError("--server-name must be a host name without spaces.")
        }
    }

    func run() async throws {
        _ = CommandLogging.logger()
        Signals.ignoreBrokenPipes()
        let connection: TLSConnection
        do {
            connection = try await TLSConnection.connect(host: address.host, port: address.port, configuration: try await makeConfiguration())
        } catch {
            StandardOutput.printError("nss-tls: \(error)")
            try? await NSSRuntime.shutdown()
            throw ExitCode(1)
        }
        StandardOutput.printError("nss-tls: connected to \(connection.remoteAddress)")
        for line in ConnectionReport.clientLines(connection.info) {
            StandardOutput.printError("nss-tls: \(line)")
        }

        let ending = await Relay(connection: connection).run()
        await connection.close()
        try? await NSSRuntime.shutdown()
        switch ending {
        case .clean(let unsentInput):
            if let unsentInput {
                StandardOutput.printError("nss-tls: warning: the server closed before all of standard input was sent: \(unsentInput)")
            }
        case .truncated:
            StandardOutput.printError("nss-tls: warning: the server closed the connection without close_notify; the data may be truncated")
            throw ExitCode(3)
        case .failed(let error):
            StandardOutput.printError("nss-tls: \(error)")
            throw ExitCode(1)
        }
    }

    /// The client configuration: trust, server name, client identity, versions, ALPN.
    private func makeConfiguration() async throws -> TLSConfiguration {
        let trust: TLSTrust
        if let ca {
            trust = try await TLSTrust.pem(file: ca)
        } else if let db {
            trust = .database(db)
        } else if insecure {
            trust = .insecureNoVerification
        } else {
            trust = .systemRoots
        }
        var configuration = TLSConfiguration.makeClientConfiguration(trust: trust)
        configuration.serverName = serverName
        if let cert, let key {
            configuration.identity = try await TLSIdentity.pem(certificateChainFile: cert, privateKeyFile: key)
        }
        tls.apply(to: &configuration)
        if let path = tls.keyLogFile { configuration.keyLog = try await KeyLogFiles.open(path) }
        configuration.revocation = crl.isEmpty ? revocation.policy : try await .crl(files: crl)
        configuration.encryptedClientHelloConfigList = try ech.map(EncryptedClientHelloKeys.configList(base64:))
        return configuration
    }

    private static func parseAddress(_ text: String) throws -> HostAndPort {
        guard let address = HostAndPort(argument: text) else {
            throw ValidationError("\"\(text)\" is not HOST:PORT; write localhost:8443, 127.0.0.1:8443 or [::1]:8443 (port 1 to 65535).")
        }
        return address
    }
}
