// swift-tools-version: 6.0
// libFuzzer targets for AsyncNSS's own parsers. Build and run them with
// `Fuzz/run.sh TARGET SECONDS`; see RELIABILITY.md for what they check.
//
// A separate package, so that the main package's `swift build` never sees
// `-sanitize=fuzzer` and `swift run nss-tls serve` is untouched. The pure
// parsers (PEM, the PROXY protocol header, the nss-tls HTTP request head) are compiled in through
// symbolic links to their one source file; the identity loader is fuzzed
// through AsyncNSS's public API.
import PackageDescription

let package = Package(
    name: "AsyncNSSFuzz",
    dependencies: [
        .package(name: "AsyncNSS", path: ".."),
    ],
    targets: [
        // Sources/nss-tls/HTTPRequestHead.swift and ASCII.swift, linked in.
        .executableTarget(name: "FuzzHTTPRequestHead", swiftSettings: [.swiftLanguageMode(.v6)]),
        // Sources/AsyncNSS/Configuration/PEM.swift, linked in.
        .executableTarget(name: "FuzzPEM", swiftSettings: [.swiftLanguageMode(.v6)]),
        // Sources/AsyncNSS/Listener/ProxyProtocolHeader.swift, linked in.
        .executableTarget(name: "FuzzProxyHeader", swiftSettings: [.swiftLanguageMode(.v6)]),
        // TLSIdentity.pem(certificateChain:privateKey:): PEM, then NSS's
        // certificate and PKCS#8 import, then the key-match check.
        .executableTarget(
            name: "FuzzPEMIdentity",
            dependencies: [.product(name: "AsyncNSS", package: "AsyncNSS")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
