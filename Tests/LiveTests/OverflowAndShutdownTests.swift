// Slow consumers (queue overflow) and graceful shutdown.

import Foundation
import Live
import Testing

@Suite struct OverflowTests {
    @Test func floodingFromOnMessageOverflowsTheQueue() async throws {
        let outcome = Recorder<(sent: Int, error: String)>()
        let ts = try TestServer({ o in o.queueSize = 16 }) { _, session, message in
            guard message.type == "flood" else {
                try? session.send(message)
                return
            }
            // 16 KiB messages: the queue only overflows once the socket's buffers are full
            // (the core writes early when a queue is half full), so they must fill those.
            let padding = String(repeating: "x", count: 16_384)
            var sent = 0
            while sent < 100_000 {
                do {
                    try session.send(Message(type: "f", ref: padding, body: Bytes(String(sent))))
                    sent += 1
                } catch let e as SessionError {
                    outcome.append((sent, e == .queueOverflow ? "queueOverflow" : "\(e)"))
                    return
                } catch {
                    outcome.append((sent, "\(error)"))
                    return
                }
            }
            outcome.append((sent, "never threw"))
        }
        let other = try await WSClient.connect(port: ts.port)
        let slow = try await WSClient.connect(port: ts.port)
        try slow.send("flood")  // and read nothing for now

        let result = try await outcome.wait("the flood to end") { !$0.isEmpty }[0]
        #expect(result.error == "queueOverflow")
        #expect(result.sent >= 16, "the queue holds queueSize frames")
        let slowSession = try #require(try await ts.waitForMessage("flood").first?.0)
        #expect(try await ts.waitForClose(of: slowSession) == .queueOverflow)
        #expect(throws: SessionError.self) { try slowSession.send(Message(type: "late")) }

        // The slow client, reading at last: a gap-free prefix of the flood, then 4008.
        var received: [String] = []
        var close: WSFrame? = nil
        while close == nil {
            let frame = try await slow.receive()
            if frame.opcode == Opcode.close.rawValue { close = frame } else { received.append(try decodeJSON(frame.text).body.string) }
        }
        #expect(received == (0..<received.count).map(String.init))
        #expect(close?.closeCode == queueOverflowCloseCode)
        #expect(queueOverflowCloseCode == 4008)

        // Another session on the same server is unaffected.
        try other.send("ping", body: "1")
        #expect(try await other.receiveMessage() == Message(type: "ping", body: "1"))
        #expect(ts.events.items.closes.count == 1)
        try await ts.stop(other, slow)
    }

    @Test func floodingFromAnotherThreadOverflowsTheQueue() async throws {
        let ts = try TestServer { o in o.queueSize = 16 }
        let other = try await WSClient.connect(port: ts.port)
        let slow = try await WSClient.connect(port: ts.port)
        try slow.send("hello")
        _ = try await slow.receiveMessage()
        let session = try #require(try await ts.waitForMessage("hello").first?.0)

        // 16 KiB frames from this (non-loop) thread to a client that reads nothing.
        let frame = try JSONCodec().encode(Message(type: "big", body: Bytes("\"" + String(repeating: "x", count: 16_384) + "\"")))
        let (sent, error) = try await offPool { () -> (Int, SessionError?) in
            for i in 0..<10_000 {
                do { try session.send(frame) } catch let e as SessionError { return (i, e) }
            }
            return (10_000, nil)
        }
        #expect(error == .queueOverflow || error == .closed, "a send fails once the queue overflowed (after \(sent))")
        #expect(try await ts.waitForClose(of: session) == .queueOverflow)
        #expect(try await slow.receiveClose().closeCode == queueOverflowCloseCode)

        try other.send("ping")
        #expect(try await other.receiveMessage() == Message(type: "ping"))
        try await ts.stop(other, slow)
    }
}

@Suite struct ShutdownTests {
    @Test func gracefulShutdownClosesEverySessionWith1001() async throws {
        let ts = try TestServer { o in o.eventLoops = 2 }
        var clients: [WSClient] = []
        for i in 0..<5 {
            let c = try await WSClient.connect(port: ts.port)
            try c.send("hello", ref: String(i))
            #expect(try await c.receiveMessage().ref == String(i))
            clients.append(c)
        }
        let server = ts.server
        let running = Task { try await server.run() }
        server.shutdown()
        server.shutdown()  // idempotent
        let codes = try await withThrowingTaskGroup(of: UInt16?.self) { group in
            for c in clients {
                group.addTask {
                    let close = try await c.receiveClose()
                    try c.sendClose(code: 1001)
                    try await c.waitForEOF()
                    return close.closeCode
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(codes == Array(repeating: 1001, count: 5))
        try await running.value  // run() returns once stopped
        let closes = ts.events.items.closes
        #expect(closes.map(\.1) == Array(repeating: .shutdown, count: 5))
        #expect(Set(closes.map(\.0)).count == 5)
        // run() after the stop returns at once, and nothing listens any more
        try await server.run()
        let port = ts.port
        #expect(throws: TestClientError.self) { _ = try WSClient.tcp(port: port, timeout: 2) }
    }

    @Test func runStartsTheServerAndCancellingItStops() async throws {
        let events = Recorder<CloseReason>()
        var options = Options()
        options.eventLoops = 1
        options.logger.logLevel = .critical
        options.onMessage = { session, message in try? session.send(message) }
        options.onClose = { _, reason in events.append(reason) }
        let server = try Server(options: options)
        try server.listen(host: "127.0.0.1", port: 0)
        #expect(server.port > 0)
        let running = Task { try await server.run() }
        let client = try await WSClient.connect(port: server.port)
        try client.send("hello")
        #expect(try await client.receiveMessage() == Message(type: "hello"))
        running.cancel()
        #expect(try await client.receiveClose().closeCode == 1001)
        client.drop()
        try await running.value
        #expect(events.items == [.shutdown])
    }

    /// A `shutdown()` before the server runs is lost: `clive_server_shutdown` sets
    /// `shutting_down` but posts to no loop (none runs yet); `clive_server_start` then starts
    /// the loops anyway, and every later `shutdown()` (and the cancellation of `run()`) is a
    /// no-op because `shutting_down` is already set. The server serves and never stops, so
    /// `run()` never returns (and `clive_server_free` would block in `clive_server_wait`).
    /// The same lost shutdown happens when `shutdown()` races with `start()`.
    @Test
    func shutdownBeforeRunIsNotLost() async throws {
        let server = try Server()
        try server.listen(host: "127.0.0.1", port: 0)
        server.shutdown()
        let finished = Recorder<Bool>()
        let running = Task {
            try await server.run()  // expected to return at once (or after a brief start)
            finished.append(true)
        }
        try await finished.wait("run() to return after an earlier shutdown()", timeout: .seconds(10)) { !$0.isEmpty }
        try await running.value
        #expect(throws: TestClientError.self) { _ = try WSClient.tcp(port: server.port, timeout: 2) }
    }

    @Test func shutdownOfAServerThatNeverStarted() async throws {
        let server = try Server()
        try server.listen(host: "127.0.0.1", port: 0)
        // never started: nothing to wait for (shutdown() here would be lost, see above)
        #expect(server.port > 0)
    }
}
