// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Live",
    products: [
        .library(name: "Live", targets: ["Live"]),
        .library(name: "LiveRooms", targets: ["LiveRooms"]),
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
    ],
    targets: [
        // libuv from Debian's libuv1-dev, found through pkg-config.
        .systemLibrary(
            name: "CUV",
            path: "Sources/CUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        // The C core: event loops, HTTP upgrade, RFC 6455 frames, send queues, topics.
        .target(
            name: "CLive",
            dependencies: ["CUV"],
            path: "CLive",
            publicHeadersPath: "include",
            cSettings: [.unsafeFlags(["-Wall", "-Wextra", "-O2"])]
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
            ],
            path: "Sources/Live"
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
        // service group's signal handlers are in place.
        .target(
            name: "LiveCommandLine",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/LiveCommandLine"
        ),
        .executableTarget(
            name: "live-server",
            dependencies: [
                "Live",
                "LiveCommandLine",
                "LiveRooms",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
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
            name: "LiveClientTests",
            dependencies: [
                "LiveClient", "Live", "LiveRooms", .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Tests/LiveClientTests"
        ),
        .testTarget(
            name: "LiveTests",
            dependencies: ["Live", .product(name: "HTTPTypes", package: "swift-http-types")],
            path: "Tests/LiveTests"
        ),
        // The load generator (C, epoll): connect, echo, fanout and topics scenarios.
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
