// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Live",
    products: [
        .library(name: "Live", targets: ["Live"]),
        .library(name: "LiveRooms", targets: ["LiveRooms"]),
        // Many live-server processes sharing topics through Redis (Options.broker).
        .library(name: "LiveRedis", targets: ["LiveRedis"]),
        .library(name: "LiveClient", targets: ["LiveClient"]),
        .executable(name: "live-server", targets: ["live-server"]),
        .executable(name: "live-load", targets: ["live-load"]),
        .executable(name: "live-echo", targets: ["live-echo"]),
        .executable(name: "live", targets: ["live"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        // libuv from Debian's libuv1-dev, found through pkg-config.
        .systemLibrary(
            name: "CUV",
            path: "Sources/CUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        // zlib from Debian's zlib1g-dev, for permessage-deflate.
        .systemLibrary(
            name: "CZlib",
            path: "Sources/CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // OpenSSL 3 from Debian's libssl-dev, for TLS listeners (wss://) in the core.
        .systemLibrary(
            name: "COpenSSL",
            path: "Sources/COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // The C core: event loops, HTTP upgrade, RFC 6455 frames, send queues, topics.
        // No unsafeFlags in any target of the Live and LiveRooms products: SwiftPM refuses
        // them in a dependency required by version (Tests/consumer). Warnings as errors are
        // in scripts/build-c, which builds the core for its own tests.
        .target(
            name: "CLive",
            dependencies: ["CUV", "CZlib", "COpenSSL"],
            path: "CLive",
            publicHeadersPath: "include"
        ),
        // msgpack-c from Debian's libmsgpack-dev, for the MessagePack codec.
        .systemLibrary(
            name: "CMsgPack",
            path: "Sources/CMsgPack",
            pkgConfig: "msgpack",
            providers: [.apt(["libmsgpack-dev"])]
        ),
        .target(
            name: "Live",
            dependencies: [
                "CLive",
                "CMsgPack",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            path: "Sources/Live"
        ),
        // hiredis from Debian's libhiredis-dev (RESP formatting and parsing), for LiveRedis
        // only: an app that stays on one node links no Redis client.
        .systemLibrary(
            name: "CHiredis",
            path: "Sources/CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // The Redis client (its own libuv thread, two connections) and the envelope codec.
        .target(
            name: "CLiveRedis",
            dependencies: ["CHiredis", "CUV", "CMsgPack", "CLive"],
            path: "Sources/CLiveRedis",
            publicHeadersPath: "include",
            // warnings as errors: scripts/build-c compiles it with the core
            cSettings: [.headerSearchPath("../../CLive/src")]
        ),
        .target(
            name: "LiveRedis",
            dependencies: ["Live", "CLiveRedis", .product(name: "Logging", package: "swift-log")],
            path: "Sources/LiveRedis"
        ),
        // The conventions of live-server (join, leave, publish, echo, replies) over Live.
        .target(
            name: "LiveRooms",
            dependencies: ["Live"],
            path: "Sources/LiveRooms"
        ),
        // A client of live-server's conventions, on the core's client side.
        .target(
            name: "LiveClient",
            dependencies: ["CLive", "Live"],
            path: "Sources/LiveClient"
        ),
        // What the executables share: a service that announces the address once the
        // service group's signal handlers are in place, and the TLS flags with their
        // SIGHUP reload.
        .target(
            name: "LiveCommandLine",
            dependencies: [
                "Live",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/LiveCommandLine"
        ),
        .executableTarget(
            name: "live-server",
            dependencies: [
                "Live",
                "LiveCommandLine",
                "LiveRooms",
                "LiveRedis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/live-server",
            resources: [.copy("Public")]
        ),
        // live: the command-line client (sub, pub, who) on LiveClient.
        .executableTarget(
            name: "live",
            dependencies: [
                "Live",
                "LiveClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/live"
        ),
        .executableTarget(
            name: "live-echo",
            dependencies: [
                "Live",
                "LiveCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/live-echo"
        ),
        .testTarget(
            name: "LiveRedisTests",
            dependencies: ["LiveRedis"],
            path: "Tests/LiveRedisTests"
        ),
        .testTarget(
            name: "LiveClientTests",
            dependencies: [
                "LiveClient", "Live", "LiveRooms", .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Tests/LiveClientTests"
        ),
        .testTarget(
            name: "LiveTests",
            dependencies: [
                "Live", .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            path: "Tests/LiveTests"
        ),
        // The load generator (C, epoll): connect, echo, fanout and topics scenarios. The
        // benchmarks' unsafeFlags are allowed: they are in no product another package uses.
        .executableTarget(
            name: "live-load",
            path: "bench/load",
            cSettings: [.unsafeFlags(["-Wall", "-Wextra", "-O2"])]
        ),
        // The race's calibration: the least a fanout server can do (bench/peers/ceiling).
        .executableTarget(
            name: "live-ceiling",
            dependencies: ["CLive"],
            path: "bench/peers/ceiling",
            cSettings: [.headerSearchPath("../../../CLive/src"), .unsafeFlags(["-Wall", "-Wextra", "-O2"])]
        ),
        // The codec microbenchmark (the C ones build with bench/micro/run).
        .executableTarget(
            name: "live-bench-codecs",
            dependencies: ["Live"],
            path: "bench/micro",
            exclude: ["micro.c", "run", "README.md"],
            sources: ["codecs.swift"]
        ),
        // Examples/agent: an agent on LiveClient that works on tasks and reports progress.
        .executableTarget(
            name: "live-example-agent",
            dependencies: ["Live", "LiveClient"],
            path: "Examples/agent",
            exclude: ["README.md"]
        ),
        // Examples/sync: sync acceleration, "scope advanced" notifications and HTTP pulls.
        .executableTarget(
            name: "live-example-sync",
            dependencies: [
                "Live", "LiveRooms", .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Examples/sync",
            exclude: ["README.md"]
        ),
        // Examples/streaming: a job's log lines and throttled progress.
        .executableTarget(
            name: "live-example-streaming",
            dependencies: ["Live", "LiveClient"],
            path: "Examples/streaming",
            exclude: ["README.md", "watch.html"]
        ),
        // Examples/view: UI patches to a page over a "latest value wins" topic.
        .executableTarget(
            name: "live-example-view",
            dependencies: [
                "Live", "LiveRooms", .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Examples/view",
            exclude: ["README.md"]
        ),
        // The README's example, compiled so that it cannot rot (scripts/test checks the two
        // stay the same).
        .executableTarget(
            name: "live-readme-example",
            dependencies: ["Live"],
            path: "Examples/readme"
        ),
    ],
    cLanguageStandard: .gnu11
)
