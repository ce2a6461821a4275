// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "qdwallet",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "qdwallet", targets: ["qdwallet"]),
        .library(name: "Ledger", targets: ["Ledger"]),
        .library(name: "Wallet", targets: ["Wallet"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        // The wallet app's HTTP API: the server, its lifecycle and metrics, and (tests only) a
        // real HTTP client. Hummingbird's default traits would add swift-configuration.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .target(
            name: "QDSQL",
            dependencies: [
                "CLibPQ",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: strict),
        .target(
            name: "Ledger",
            dependencies: [
                "QDSQL",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        .target(
            name: "Wallet",
            dependencies: [
                "Ledger", "QDSQL",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        .target(
            name: "Payments",
            dependencies: ["Ledger", "Wallet", "Campaigns", "QDSQL"],
            swiftSettings: strict),
        .systemLibrary(
            name: "CLibXML2",
            pkgConfig: "libxml-2.0",
            providers: [.apt(["libxml2-dev"])]),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(
            name: "Feeds",
            dependencies: [
                "Ledger", "CLibXML2", "CCurl",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(
            name: "Campaigns",
            dependencies: [
                "Ledger", "QDConfig", "QDSQL",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        .target(
            name: "Billing",
            dependencies: [
                "QDSQL", "Ledger", "Wallet", "Feeds", "JobRunner", "QDConfig", "Campaigns", "Payments",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(
            name: "Reports",
            dependencies: [
                "QDSQL",
                "Ledger", "JobRunner", "Wallet", "Billing", "Campaigns",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        .target(
            name: "Notify",
            dependencies: [
                "Ledger", "JobRunner", "Feeds", "QDConfig", "Wallet", "Billing", "QDSQL",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(
            name: "QDConfig",
            dependencies: ["Ledger", .product(name: "TOMLKit", package: "TOMLKit")],
            swiftSettings: strict),
        .target(
            name: "JobRunner",
            dependencies: [
                "QDSQL", "Ledger", "QDConfig",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // The wallet app's sign-in, devices, tokens and idempotent requests.
        .target(
            name: "AppAccess",
            dependencies: [
                "Ledger", "QDSQL", "Wallet",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        .target(
            name: "QDSchema",
            dependencies: [
                "Ledger", "Wallet", "JobRunner", "Billing", "Campaigns", "Reports", "AppAccess",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict),
        .target(
            name: "QDWalletCLI",
            dependencies: [
                "Ledger",
                "Wallet",
                "JobRunner",
                "QDConfig",
                "Billing",
                "Feeds",
                "Campaigns",
                "Payments",
                "Reports",
                "Notify",
                "QDSchema",
                "QDWalletServer",
                "AppAccess",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // The wallet app's HTTP API (`qdwallet serve`); its contract is openapi.json.
        .target(
            name: "QDWalletServer",
            dependencies: [
                "Ledger", "QDSQL", "Wallet", "AppAccess", "Billing", "Campaigns",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("openapi.json")],
            swiftSettings: strict),
        .executableTarget(
            name: "qdwallet",
            dependencies: ["QDWalletCLI"],
            swiftSettings: strict),
        .executableTarget(
            name: "qdwallet-fuzz",
            dependencies: ["Ledger", "Wallet", "Feeds"],
            swiftSettings: strict),
        .executableTarget(
            name: "qdwallet-bench",
            dependencies: [
                "Ledger", "Wallet", "Billing", "Campaigns", "Feeds", "JobRunner", "Reports", "QDSchema", "QDSQL", "AppAccess",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "QDConfigTests",
            dependencies: ["QDConfig"],
            swiftSettings: strict),
        .testTarget(
            name: "QDSQLTests",
            dependencies: [
                "QDSQL",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "LedgerTests",
            dependencies: [
                "Ledger", "QDSQL", "QDTestEngines",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "WalletTests",
            dependencies: [
                "Wallet", "Ledger", "QDSQL", "QDTestEngines",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "JobRunnerTests",
            dependencies: [
                "JobRunner", "Ledger", "QDConfig", "QDSQL", "QDTestEngines", "QDTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // The engine the database tests run on (SQLite, or PostgreSQL when configured).
        .target(
            name: "QDTestEngines",
            dependencies: ["QDSQL"],
            path: "Tests/QDTestEngines",
            swiftSettings: strict),
        // What the tests of Billing, Feeds, Notify, Reports and the job runner share: a billing
        // world on its own database, the loopback feed server, an OpenSSH server, a silent
        // server, a job step with a hook in its reads.
        .target(
            name: "QDTestSupport",
            dependencies: [
                "Billing", "Feeds", "JobRunner", "Ledger", "Wallet", "QDConfig", "Reports", "QDSchema", "QDSQL", "QDTestEngines",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/QDTestSupport",
            exclude: ["Fixtures"],
            swiftSettings: strict),
        .testTarget(
            name: "BillingTests",
            dependencies: [
                "QDTestSupport", "QDTestEngines", "Billing", "Feeds", "JobRunner", "Ledger", "Wallet", "QDConfig", "Campaigns", "Payments", "Reports", "QDSchema", "QDSQL",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "FeedsTests",
            dependencies: [
                "QDTestSupport", "QDSQL", "Feeds", "Billing", "JobRunner", "Ledger",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "NotifyTests",
            dependencies: [
                "QDTestSupport", "QDSQL", "Notify", "Feeds", "Billing", "JobRunner", "Ledger", "Wallet", "QDConfig",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "ReportsTests",
            dependencies: [
                "QDTestSupport", "QDTestEngines", "QDSQL", "QDSchema", "Reports", "Billing", "JobRunner", "Ledger", "Wallet",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "CampaignTests",
            dependencies: [
                "Campaigns", "Billing", "Feeds", "JobRunner", "Ledger", "Wallet", "QDConfig",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "QDWalletServer", "QDTestEngines", "QDTestSupport", "AppAccess", "Billing", "Campaigns", "Feeds", "Notify", "Payments", "Wallet", "Ledger", "QDSQL", "QDSchema",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "CLITests",
            dependencies: [
                "QDTestEngines", "QDWalletCLI", "Ledger", "Wallet", "qdwallet", "QDSchema", "QDSQL",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict),
    ]
)
