// swift-tools-version: 6.1
import PackageDescription

// The benchmark package: kept apart from AsyncNSS so that none of its
// dependencies (ordo-one/benchmark, SwiftNIO, NIOSSL) become dependencies of
// the library.
let strictSwift6: [SwiftSetting] = [
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "AsyncNSSBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "AsyncNSS", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Micro-benchmarks, run with `swift package benchmark`.
        .executableTarget(
            name: "AsyncNSSBenchmarks",
            dependencies: [
                .product(name: "AsyncNSS", package: "AsyncNSS"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/AsyncNSSBenchmarks",
            swiftSettings: strictSwift6,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Measurement helpers shared by both peers: options, timing, percentiles.
        .target(
            name: "PeerKit",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strictSwift6
        ),
        // The AsyncNSS side of the comparison: echo server and load clients.
        .executableTarget(
            name: "asyncnss-peer",
            dependencies: [
                "PeerKit",
                .product(name: "AsyncNSS", package: "AsyncNSS"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift6
        ),
        // The comparison point: the same server and clients on SwiftNIO + NIOSSL.
        .executableTarget(
            name: "niossl-peer",
            dependencies: [
                "PeerKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift6
        ),
    ],
    swiftLanguageModes: [.v6]
)
