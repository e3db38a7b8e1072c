// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Live",
    products: [
        .library(name: "Live", targets: ["Live"]),
        .library(name: "LiveRooms", targets: ["LiveRooms"]),
        .executable(name: "live-server", targets: ["live-server"]),
        .executable(name: "live-load", targets: ["live-load"]),
        .executable(name: "live-echo", targets: ["live-echo"]),
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
        // zlib from Debian's zlib1g-dev, for permessage-deflate.
        .systemLibrary(
            name: "CZlib",
            path: "Sources/CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // The C core: event loops, HTTP upgrade, RFC 6455 frames, send queues, topics.
        // No unsafeFlags in any target of the Live and LiveRooms products: SwiftPM refuses
        // them in a dependency required by version (Tests/consumer). Warnings as errors are
        // in scripts/build-c, which builds the core for its own tests.
        .target(
            name: "CLive",
            dependencies: ["CUV", "CZlib"],
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
            ],
            path: "Sources/Live"
        ),
        // The conventions of live-server (join, leave, publish, echo, replies) over Live.
        .target(
            name: "LiveRooms",
            dependencies: ["Live"],
            path: "Sources/LiveRooms"
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
            name: "LiveTests",
            dependencies: ["Live", .product(name: "HTTPTypes", package: "swift-http-types")],
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
