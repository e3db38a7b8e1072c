// Listening: a taken port fails with an error that says so, unless both servers share it.

import Live
import Testing

@Suite struct ListenTests {
    @Test func secondServerOnATakenPortSaysInUse() async throws {
        let first = try Server(options: quietOptions())
        try first.listen(host: "127.0.0.1", port: 0)
        let port = first.port
        let second = try Server(options: quietOptions())
        let error = try #require(throws: ServerError.self) { try second.listen(host: "127.0.0.1", port: port) }
        #expect(error.description.contains("127.0.0.1:\(port)"), "\(error)")
        #expect(error.description.contains("in use"), "\(error)")
        first.shutdown()
        second.shutdown()
    }

    /// With `sharePort` on both, the second server binds too (the kernel splits the
    /// connections), and a client reaches one of them.
    @Test func sharePortLetsTwoServersListen() async throws {
        var options = quietOptions()
        options.sharePort = true
        options.onMessage = { session, message in try? session.send(message) }
        let first = try Server(options: options)
        try first.listen(host: "127.0.0.1", port: 0)
        let second = try Server(options: options)
        try second.listen(host: "127.0.0.1", port: first.port)
        #expect(second.port == first.port)
        try first.start()
        try second.start()
        let client = try await WSClient.connect(port: first.port)
        try client.send("hello")
        #expect(try await client.receiveMessage() == Message(type: "hello"))
        client.drop()
        first.shutdown()
        second.shutdown()
        try await first.run()
        try await second.run()
    }

    @Test(arguments: [-1, 65_536, 1 << 20])
    func portOutOfRangeSaysSo(_ port: Int) throws {
        let server = try Server(options: quietOptions())
        let error = try #require(throws: ServerError.self) { try server.listen(host: "127.0.0.1", port: port) }
        #expect(error.description == "port \(port) is outside 0...65535")
        server.shutdown()
    }
}

private func quietOptions() -> Options {
    var options = Options()
    options.eventLoops = 1
    options.logger.logLevel = .critical
    return options
}
