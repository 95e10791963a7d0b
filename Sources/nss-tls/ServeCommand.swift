import ArgumentParser
import AsyncNSS
import AsyncNSSServiceLifecycle
import Logging
import ServiceLifecycle
import UnixSignals
#if canImport(Glibc)
import Glibc
#endif

/// `nss-tls serve`: a TLS server that describes each connection to HTTP
/// clients and echoes everything else.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Accept TLS connections: answer HTTP/1.x requests with the connection's parameters, echo anything else.",
        discussion: """
            Without --cert/--key, --db/--nickname or --key-uri, the server presents an \
            in-memory self-signed certificate for localhost, 127.0.0.1 and ::1. \
            --pkcs11-module with --key-uri serves with a key that stays on a PKCS#11 \
            token (an HSM); --cert gives its certificate chain.

            --ocsp-response staples an OCSP response to the certificate; \
            --client-crl checks client certificates against CRLs. --ech-keys \
            decrypts Encrypted Client Hellos. --early-data accepts TLS 1.3 0-RTT.

            Once bound it prints "nss-tls: listening on HOST:PORT" on standard output \
            (useful with --port 0). It logs one line per connection on standard error: \
            the peer, the TLS version, the cipher suite and how the connection ended. \
            Failed handshakes are logged too.

            A client whose first line is an HTTP/1.0 or HTTP/1.1 request line gets a \
            text/plain page for each request (version, cipher, ALPN, resumption, SNI, \
            client certificate, asked for with --client-auth); keep-alive and \
            pipelining are supported. GET /private asks for a client certificate \
            in the middle of the connection if none was presented (TLS 1.2 \
            renegotiation, TLS 1.3 post-handshake authentication) and answers 200 \
            with its subject, or 403. GET /rekey renews the keys (TLS 1.3 KeyUpdate, \
            TLS 1.2 renegotiation) and answers with the event. The server speaks only HTTP/1.x: offering h2 \
            with --alpn makes h2 clients fall through to the echo. Any other client \
            is echoed until it closes. SIGINT or SIGTERM stops accepting, gives open \
            connections --grace-period seconds to finish, closes the rest with \
            close_notify, then exits 0. SIGHUP re-reads --cert/--key (and the other \
            files: --ocsp-response, --client-crl, ...) for new connections; open ones go on. With --reload-on-change, \
            so does a change of those files on disk.

            GET /health answers 200 ok; with --drain-delay, SIGINT or SIGTERM first \
            makes it answer 503 while the server goes on serving for that many \
            seconds, so that a load balancer's health check takes it out of \
            rotation before it stops accepting. --proxy-protocol reads a PROXY \
            protocol header (v1 or v2) before TLS and takes the client's address \
            from it. --workers N serves with N worker processes on one port that \
            share one session cache; the parent restarts a worker that dies and \
            passes SIGINT, SIGTERM and SIGHUP on to them.
            """
    )

    @Option(help: "The address to listen on (IPv4 or IPv6).")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on; 0 picks a free one.")
    var port = 8443

    @Option(help: ArgumentHelp("A PEM certificate chain, leaf first (with --key).", valueName: "pem-file"))
    var cert: String?

    @Option(help: ArgumentHelp("The PKCS#8 PEM private key of --cert.", valueName: "pem-file"))
    var key: String?

    @Option(help: ArgumentHelp("An NSS database directory holding the server certificate (with --nickname).", valueName: "dir"))
    var db: String?

    @Option(help: ArgumentHelp("The nickname of the certificate in --db.", valueName: "name"))
    var nickname: String?

    @Option(name: .customLong("db-password"), help: ArgumentHelp("The password of --db, if it has one.", valueName: "password"))
    var dbPassword: String?

    @Option(name: .customLong("pkcs11-module"), help: ArgumentHelp("A PKCS#11 module (an HSM's library, SoftHSM2's libsofthsm2.so) holding the private key named by --key-uri.", valueName: "library"))
    var pkcs11Module: String?

    @Option(name: .customLong("key-uri"), help: ArgumentHelp("A PKCS#11 URI (RFC 7512) of the server key on a token of --pkcs11-module, such as pkcs11:token=web;object=server-key. Its certificate comes from --cert, or else from the token.", valueName: "pkcs11-uri"))
    var keyURI: String?

    @Option(name: .customLong("pkcs11-pin-file"), help: ArgumentHelp("A file holding the token's PIN (or put pin-source= in the URI).", valueName: "file"))
    var pkcs11PinFile: String?

    @Option(name: .customLong("client-auth"), help: "Whether to ask clients for a certificate.")
    var clientAuth = ClientAuthArgument.none

    @Flag(name: .customLong("request-client-cert"), help: "Ask for a client certificate on the initial handshake (same as --client-auth request).")
    var requestClientCert = false

    @Flag(name: .customLong("require-client-cert"), help: "Require a client certificate on the initial handshake (same as --client-auth require).")
    var requireClientCert = false

    @Option(name: .customLong("ocsp-response"), help: ArgumentHelp("Staple this DER OCSP response (openssl ocsp -respout) to the certificate for clients that ask. It must be good, fresh, for this certificate and signed by its issuer; SIGHUP (or --reload-on-change) reads it again.", valueName: "der-file"))
    var ocspResponse: String?

    @Option(name: .customLong("ocsp-issuer"), help: ArgumentHelp("The issuer's PEM certificate, to check --ocsp-response's signature when the --cert chain does not hold it.", valueName: "pem-file"))
    var ocspIssuer: String?

    @Flag(name: .customLong("early-data"), help: "Accept TLS 1.3 early data (0-RTT) from resuming clients, up to --max-early-data bytes; the page says how many bytes came early. Not with --workers: each process would keep its own anti-replay state.")
    var earlyData = false

    @Option(name: .customLong("max-early-data"), help: ArgumentHelp("The most early data a client may send, with --early-data.", valueName: "bytes"))
    var maxEarlyData = 16_384

    @Option(name: .customLong("ech-keys"), help: ArgumentHelp("Encrypted Client Hello keys (PEM: PRIVATE KEY and ECHCONFIG blocks). With --ech-public-name and no such file, new keys are made and written there (mode 0600). The ECHConfigList to publish is logged.", valueName: "pem-file"))
    var echKeys: String?

    @Option(name: .customLong("ech-public-name"), help: ArgumentHelp("The public name of new ECH keys: the name clients send in the clear. The certificate must cover it too.", valueName: "name"))
    var echPublicName: String?

    @Option(name: .customLong("client-crl"), help: ArgumentHelp("Check client certificates against this CRL file, DER or PEM (repeatable); a certificate whose issuer has no CRL here fails. Read again on SIGHUP.", valueName: "file"))
    var clientCRL: [String] = []

    @Option(name: .customLong("client-ca"), help: ArgumentHelp("Verify client certificates (initial handshake and /private) against the CA certificates of this PEM file (default: the system roots).", valueName: "pem-file"))
    var clientCA: String?

    @Option(name: .customLong("sni"), help: ArgumentHelp("Present another identity to clients that ask for NAME (repeatable; *.example.com matches one label).", valueName: "name=cert.pem,key.pem"))
    var serverNames: [ServerNameArgument] = []

    @Flag(name: .customLong("allow-client-renegotiation"), help: "Accept TLS 1.2 renegotiations that clients start (refused by default).")
    var allowClientRenegotiation = false

    @Option(name: .customLong("grace-period"), help: ArgumentHelp("Seconds that open connections get to finish after SIGINT or SIGTERM before they are closed.", valueName: "seconds"))
    var gracePeriod = 1.0

    @Option(name: .customLong("drain-delay"), help: ArgumentHelp("Seconds to go on serving after SIGINT or SIGTERM, with GET /health answering 503, before accepting stops: time for a load balancer's health check to take the server out of rotation.", valueName: "seconds"))
    var drainDelay = 0.0

    @Flag(name: .customLong("reload-on-change"), help: "Also reload when --cert, --key, --sni, --client-ca or --pkcs11-pin-file files change on disk (checked every 2 seconds).")
    var reloadOnChange = false

    @Option(name: .customLong("event-loops"), help: ArgumentHelp("Event loops, the threads that poll the sockets and run the connections (default: one per core this process may use: its CPU affinity or the CPU quota of its cgroup, a container's or a systemd service's, whichever is less).", valueName: "count"))
    var eventLoops: Int?

    @Option(name: .customLong("workers"), help: ArgumentHelp("Serve with this many worker processes that share the port and one session cache, so that a session made by one resumes on any other. Each worker gets cores / count event loops (at least one) unless --event-loops is given. The parent restarts a worker that dies, and passes SIGTERM, SIGINT and SIGHUP on to all of them.", valueName: "count"))
    var workers: Int?

    @Flag(name: .customLong("proxy-protocol"), help: "Expect a PROXY protocol header (version 1 or 2, as HAProxy's send-proxy sends) before TLS on every connection; the client's address is taken from it. Only for a port that nothing but the proxy can reach.")
    var proxyProtocol = false

    @OptionGroup var tls: TLSOptions

    @Flag(name: .long, help: "Log at debug level (same as --log-level debug).")
    var verbose = false

    @Option(name: .customLong("log-level"), help: ArgumentHelp("The lowest level logged. Each connection's line is at info; warning leaves only problems.", valueName: "level"))
    var logLevel: LogLevelArgument?

    func validate() throws {
        guard (0...65535).contains(port) else {
            throw ValidationError("--port must be between 0 and 65535.")
        }
        if let workers, !(1...256).contains(workers) {
            throw ValidationError("--workers must be between 1 and 256.")
        }
        if workers != nil, cert == nil, db == nil, keyURI == nil {
            // Each worker would make a self-signed certificate of its own.
            throw ValidationError("--workers needs --cert/--key, --db/--nickname or --key-uri: every worker serves the same identity.")
        }
        if let eventLoops, !(1...1024).contains(eventLoops) {
            throw ValidationError("--event-loops must be between 1 and 1024.")
        }
        switch (cert, key, keyURI) {
        case (.some, nil, nil): throw ValidationError("--cert needs --key (or --key-uri).")
        case (nil, .some, _): throw ValidationError("--key needs --cert.")
        case (_, .some, .some): throw ValidationError("Use either --key or --key-uri, not both.")
        default: break
        }
        if keyURI != nil, db != nil {
            throw ValidationError("Use either --key-uri or --db/--nickname, not both.")
        }
        if pkcs11PinFile != nil, keyURI == nil {
            throw ValidationError("--pkcs11-pin-file needs --key-uri.")
        }
        switch (db, nickname) {
        case (.some, nil): throw ValidationError("--db needs --nickname.")
        case (nil, .some): throw ValidationError("--nickname needs --db.")
        default: break
        }
        if cert != nil, db != nil {
            throw ValidationError("Use either --cert/--key or --db/--nickname, not both.")
        }
        guard drainDelay.isFinite, drainDelay >= 0, drainDelay <= 3600 else {
            throw ValidationError("--drain-delay must be a number of seconds from 0 to 3600.")
        }
        guard gracePeriod.isFinite, gracePeriod >= 0, gracePeriod <= 3600 else {
            throw ValidationError("--grace-period must be a number of seconds from 0 to 3600.")
        }
        if requestClientCert, requireClientCert {
            throw ValidationError("--request-client-cert and --require-client-cert exclude each other.")
        }
        if (requestClientCert || requireClientCert), clientAuth != .none {
            throw ValidationError("Use either --client-auth or --request-client-cert/--require-client-cert, not both.")
        }
        let names = serverNames.map { $0.name.lowercased() }
        if Set(names).count != names.count {
            throw ValidationError("--sni names a host twice.")
        }
        if dbPassword != nil, db == nil {
            throw ValidationError("--db-password needs --db.")
        }
        if verbose, logLevel != nil {
            throw ValidationError("Use either --verbose or --log-level, not both.")
        }
        if earlyData, workers != nil {
            throw ValidationError("--early-data and --workers exclude each other: each worker would keep its own anti-replay state, so a replay to another worker would be accepted.")
        }
        guard (1...(1 << 24)).contains(maxEarlyData) else {
            throw ValidationError("--max-early-data must be between 1 and 16777216.")
        }
        if echPublicName != nil, echKeys == nil {
            throw ValidationError("--ech-public-name needs --ech-keys, the file to keep the new keys in.")
        }
        if ocspIssuer != nil, ocspResponse == nil {
            throw ValidationError("--ocsp-issuer needs --ocsp-response.")
        }
        if ocspResponse != nil, cert == nil, db == nil, keyURI == nil {
            throw ValidationError("--ocsp-response needs the certificate it is about: --cert/--key, --db/--nickname or --key-uri.")
        }
    }

    func run() async throws {
        if WorkerLauncher.isWorker {
            var logger = CommandLogging.logger(level: logLevel?.level ?? (verbose ? .debug : .info))
            logger[metadataKey: "worker"] = "\(getpid())"
            try await serve(asWorker: true, logger: logger)
        } else if let workers {
            let logger = CommandLogging.logger(level: logLevel?.level ?? (verbose ? .debug : .info))
            try await ServeWorkers(count: workers, host: host, port: port, logger: logger) { [self] in
                try await makeConfiguration(logger: logger)
            }.run()
        } else {
            try await serve(asWorker: false, logger: CommandLogging.logger(level: logLevel?.level ?? (verbose ? .debug : .info)))
        }
    }

    /// Serves in this process: alone, or as one worker of `--workers`, on the
    /// parent's socket and with its session cache.
    private func serve(asWorker: Bool, logger: Logger) async throws {
        Signals.ignoreBrokenPipes()
        // Every signal serve handles is trapped before the address is announced.
        // Whoever acts on the announcement then meets a server that is fully
        // set up: a SIGTERM at once shuts it down gracefully instead of killing
        // it, and the signal sources' descriptors already exist, so a client
        // that uses up the descriptor table does not leave them without one.
        let shutdownSignals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let listener: TLSListener
        do {
            var options = NSSRuntime.Options()
            // Workers share the cores: each gets its share of event loops
            // unless --event-loops says otherwise.
            let loops = eventLoops ?? (asWorker ? max(1, NSSRuntime.usableCores / max(1, workers ?? 1)) : nil)
            if let loops {
                // The hot loops, and the cold thread that holds idle sockets.
                options.pollThreads = loops + 1
            }
            if asWorker { options.serverSessionCache = .inheritedFromParent }
            if loops != nil || asWorker { try NSSRuntime.initialize(options) }
            let configuration = try await makeConfiguration(logger: logger)
            if asWorker {
                listener = try await TLSListener.inheritedFromParent(configuration: configuration, logger: logger)
            } else {
                listener = try await TLSListener.bind(host: host, port: port, configuration: configuration, logger: logger)
            }
        } catch {
            StandardOutput.printError("nss-tls: \(error)")
            try? await NSSRuntime.shutdown()
            throw ExitCode(1)
        }
        if asWorker {
            // The parent announced the address.
            logger.info("worker serving on \(listener.localAddress)")
        } else {
            do {
                try StandardOutput.writeLine("nss-tls: listening on \(listener.localAddress)")
            } catch {
                logger.warning("could not announce the address on standard output", metadata: ["error": "\(error)"])
            }
        }
        let draining = Draining()
        let server = TLSServer(listener: listener, gracePeriod: .milliseconds(Int64((gracePeriod * 1000).rounded())), logger: logger) { connection in
            await ServeSession(connection: connection, logger: logger, draining: draining).run()
        }
        let reloader = ReloadOnHangup(listener: listener, hangups: hangups, logger: logger) { [self] in try await makeConfiguration(logger: logger) }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: server),
            .init(service: reloader, successTerminationBehavior: .gracefullyShutdownGroup),
        ]
        if reloadOnChange {
            let watcher = ReloadOnFileChange(listener: listener, files: watchedFiles) { [self] in try await makeConfiguration(logger: logger) }
            services.append(.init(service: watcher, successTerminationBehavior: .gracefullyShutdownGroup))
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: logger))
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                for await _ in shutdownSignals {
                    if drainDelay > 0 {
                        draining.start()
                        logger.notice("draining: serving for \(drainDelay) s more with GET /health answering 503, then stopping")
                        try? await Task.sleep(for: .milliseconds(Int64((drainDelay * 1000).rounded())))
                    }
                    await group.triggerGracefulShutdown()
                    return
                }
            }
            do {
                try await group.run()
            } catch {
                logger.error("the server stopped", metadata: ["error": "\(error)"])
            }
            tasks.cancelAll()
        }
        logger.debug("shutting NSS down")
        do {
            try await NSSRuntime.shutdown()
        } catch {
            logger.debug("NSS shutdown reported a problem", metadata: ["error": "\(error)"])
        }
        logger.debug("stopped")
    }

    /// The files ``makeConfiguration(logger:)`` reads.
    private var watchedFiles: [String] {
        [cert, key, clientCA, pkcs11PinFile, ocspResponse, ocspIssuer, echKeys].compactMap { $0 } + clientCRL + serverNames.flatMap { [$0.certificateFile, $0.keyFile] }
    }

    /// The server configuration: the identity from the flags (or a self-signed
    /// one), versions, ALPN and handshake timeout.
    private func makeConfiguration(logger: Logger) async throws -> TLSConfiguration {
        var identity: TLSIdentity
        if let keyURI {
            let uri = pkcs11PinFile.map { PKCS11URIQuery.adding("pin-source", $0, to: keyURI) } ?? keyURI
            identity = try await TLSIdentity.pkcs11(keyURI: uri, modulePath: pkcs11Module, certificateChainFile: cert)
        } else if let cert, let key {
            identity = try await TLSIdentity.pem(certificateChainFile: cert, privateKeyFile: key)
        } else if let db, let nickname {
            identity = try await TLSIdentity.database(db, nickname: nickname, password: dbPassword)
        } else {
            let names = ["localhost", "127.0.0.1", "::1"]
            identity = try await TLSIdentity.selfSigned(names: names)
            logger.notice("no --cert/--key or --db given: using an in-memory self-signed certificate for \(names.joined(separator: ", "))")
        }
        if let ocspResponse {
            identity = try await identity.stapling(ocspResponseFile: ocspResponse, issuerCertificateFile: ocspIssuer)
        }
        var configuration = TLSConfiguration.makeServerConfiguration(identity: identity)
        tls.apply(to: &configuration)
        if let path = tls.keyLogFile { configuration.keyLog = try await KeyLogFiles.open(path) }
        configuration.clientCertificatePolicy = requireClientCert ? .require : requestClientCert ? .request : clientAuth.policy
        configuration.renegotiation = allowClientRenegotiation ? .localAndPeer : .automatic
        configuration.proxyProtocol = proxyProtocol ? .required : .off
        for entry in serverNames {
            configuration.serverNameIdentities[entry.name] = try await TLSIdentity.pem(certificateChainFile: entry.certificateFile, privateKeyFile: entry.keyFile)
        }
        if let clientCA {
            configuration.trust = try await TLSTrust.pem(file: clientCA)
        }
        if !clientCRL.isEmpty {
            configuration.revocation = try await .crl(files: clientCRL)
        }
        if earlyData {
            configuration.earlyData = .accept(maximumSize: maxEarlyData)
        }
        if let echKeys {
            configuration.encryptedClientHelloKeys = try await Self.loadOrMakeECHKeys(echKeys, publicName: echPublicName, logger: logger)
        }
        return configuration
    }

    /// The ECH keys of `file`, made first when `publicName` is given and the
    /// file does not exist yet; the list to publish goes to the log.
    private static func loadOrMakeECHKeys(_ file: String, publicName: String?, logger: Logger) async throws -> EncryptedClientHelloKeys {
        let keys: EncryptedClientHelloKeys
        if let publicName, access(file, F_OK) != 0 {
            keys = try await EncryptedClientHelloKeys.generate(publicName: publicName)
            try await keys.write(toFile: file)
            logger.notice("made new ECH keys in \(file)")
        } else {
            keys = try await EncryptedClientHelloKeys.load(file: file)
        }
        logger.info("ECH on: public name \(keys.publicName); ECHConfigList (the DNS HTTPS record's ech=): \(keys.configListBase64)")
        return keys
    }
}
