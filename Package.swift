// swift-tools-version: 6.2
import PackageDescription

let strictSwift6: [SwiftSetting] = [
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
]

let package = Package(
    name: "AsyncNSS",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "AsyncNSS", targets: ["AsyncNSS"]),
        .library(name: "AsyncNSSServiceLifecycle", targets: ["AsyncNSSServiceLifecycle"]),
        .executable(name: "nss-tls", targets: ["nss-tls"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // 1.16: LogEvent and its error, which the tool's log handler reads.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.0"),
        // `swift package generate-documentation`; a plugin, linked into nothing.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CNSS",
            pkgConfig: "nss",
            providers: [.apt(["libnss3-dev", "libnspr4-dev"])]
        ),
        .target(
            name: "AsyncNSS",
            dependencies: [
                "CNSS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSwift6
        ),
        .target(
            name: "AsyncNSSServiceLifecycle",
            dependencies: [
                "AsyncNSS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6
        ),
        .executableTarget(
            name: "nss-tls",
            dependencies: [
                "AsyncNSS",
                "AsyncNSSServiceLifecycle",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6
        ),
        .executableTarget(
            name: "EchoServer",
            dependencies: ["AsyncNSS"],
            path: "Examples/EchoServer",
            exclude: ["README.md"],
            swiftSettings: strictSwift6
        ),
        .executableTarget(
            name: "HTTPSHello",
            dependencies: ["AsyncNSS"],
            path: "Examples/HTTPSHello",
            exclude: ["README.md"],
            swiftSettings: strictSwift6
        ),
        .executableTarget(
            name: "MutualTLSClient",
            dependencies: ["AsyncNSS"],
            path: "Examples/MutualTLSClient",
            exclude: ["README.md"],
            swiftSettings: strictSwift6
        ),
        .executableTarget(
            name: "StartTLS",
            dependencies: ["AsyncNSS"],
            path: "Examples/StartTLS",
            exclude: ["README.md"],
            swiftSettings: strictSwift6
        ),
        .executableTarget(
            name: "HSMServer",
            dependencies: ["AsyncNSS"],
            path: "Examples/HSMServer",
            exclude: ["README.md"],
            swiftSettings: strictSwift6
        ),
        .executableTarget(
            name: "ServiceLifecycleServer",
            dependencies: [
                "AsyncNSS",
                "AsyncNSSServiceLifecycle",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Examples/ServiceLifecycleServer",
            exclude: ["README.md"],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "AsyncNSSTests",
            dependencies: [
                "AsyncNSS",
                "AsyncNSSServiceLifecycle",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // Built for the tests that run them.
                "EchoServer", "HTTPSHello", "MutualTLSClient", "StartTLS", "ServiceLifecycleServer", "HSMServer",
                "CNSS",
                "nss-tls",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: strictSwift6
        ),
    ],
    swiftLanguageModes: [.v6]
)
