// swift-tools-version:6.2
// A Hummingbird 2 WebSocket server speaking the live-server conventions, for bench/race.
// Not part of the root package: swift build -c release --package-path bench/peers/hummingbird
import PackageDescription

let package = Package(
    name: "hb-pubsub",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
    ],
    targets: [
        .executableTarget(
            name: "hb-pubsub",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            ],
            path: "Sources/hb-pubsub"
        )
    ]
)
