// The order of the handlers per session and the CloseReason of every way a session ends.

import Live
import Testing

/// The handler calls of the client that connected with `?c=<name>`, in order, e.g.
/// ["auth", "message:a", "close"].
private func sequence(of name: String, in events: [Event]) -> [String] {
    events.compactMap { event in
        switch event {
        case .auth(let r): return r.queryValue("c") == name ? "auth" : nil
        case .message(let s, let m): return s.meta.string("c") == name ? "message:\(m.type)" : nil
        case .close(let s, _): return s.meta.string("c") == name ? "close" : nil
        }
    }
}

private func namedAuth(_ o: inout Options) {
    o.onAuth = { request in ["c": .string(request.queryValue("c") ?? "")] }
}

enum Ending: String, CaseIterable, Sendable {
    case clientClose, serverClose, droppedConnection
}

@Suite struct LifecycleTests {
    @Test(arguments: Ending.allCases)
    func callbackOrder(_ ending: Ending) async throws {
        let ts = try TestServer(namedAuth) { _, session, message in
            if message.type == "close-me" {
                do { try session.close(code: 4001, reason: "go away") } catch { Issue.record(error) }
            } else {
                try? session.send(message)
            }
        }
        let client = try await WSClient.connect(port: ts.port, path: "/?c=x")
        try client.send("one")
        try client.send("two")
        #expect(try await client.receiveMessage().type == "one")
        #expect(try await client.receiveMessage().type == "two")
        var expected = ["auth", "message:one", "message:two"]
        let reason: CloseReason
        switch ending {
        case .clientClose:
            try client.sendClose(code: 1000, reason: "bye")
            let echo = try await client.receiveClose()
            #expect(echo.closeCode == 1000)
            try await client.waitForEOF()
            reason = .clientClosed(code: 1000, reason: "bye")
        case .serverClose:
            try client.send("close-me")
            expected.append("message:close-me")
            let close = try await client.receiveClose()
            #expect(close.closeCode == 4001)
            #expect(close.closeReason == "go away")
            try client.sendClose(code: 4001)
            try await client.waitForEOF()
            reason = .serverClosed(code: 4001, reason: "go away")
        case .droppedConnection:
            client.drop()
            reason = .connectionLost
        }
        let closes = try await ts.waitForCloses(1)
        #expect(closes[0].1 == reason)
        // Once the server has stopped no handler can run any more: onClose ran exactly once.
        try await ts.stop()
        let events = ts.events.items
        #expect(sequence(of: "x", in: events) == expected + ["close"])
        #expect(events.closes.count == 1)
    }

    @Test func clientCloseWithoutCodeIs1005() async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        try client.sendClose(code: nil)
        let echo = try await client.receiveClose()
        #expect(echo.closeCode == nil, "an empty close is answered with an empty close")
        let closes = try await ts.waitForCloses(1)
        #expect(closes[0].1 == .clientClosed(code: 1005, reason: ""))
        try await ts.stop(client)
    }

    @Test func unmaskedFrameIsAProtocolError() async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        try client.send(opcode: .text, Array(json("hi").utf8), masked: false)
        let close = try await client.receiveClose()
        #expect(close.closeCode == 1002)
        let closes = try await ts.waitForCloses(1)
        #expect(closes[0].1 == .protocolError(code: 1002))
        #expect(ts.events.items.messages.isEmpty)
        try await ts.stop(client)
    }

    @Test func invalidUTF8TextIsAProtocolError() async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        try client.send(opcode: .text, [0x7b, 0xff, 0x7d])
        #expect(try await client.receiveClose().closeCode == 1007)
        #expect(try await ts.waitForCloses(1)[0].1 == .protocolError(code: 1007))
        try await ts.stop(client)
    }

    @Test func tooBigMessageIsAProtocolError() async throws {
        let ts = try TestServer { o in o.maxMessageSize = 1000 }
        let client = try await WSClient.connect(port: ts.port)
        try client.send("big", body: "\"" + String(repeating: "x", count: 2000) + "\"")
        #expect(try await client.receiveClose().closeCode == 1009)
        #expect(try await ts.waitForCloses(1)[0].1 == .protocolError(code: 1009))
        try await ts.stop(client)
    }

    @Test func nonJSONTextIsADecodeError() async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        try client.sendText("this is not JSON")
        let close = try await client.receiveClose()
        #expect(close.closeCode == 1007)
        let closes = try await ts.waitForCloses(1)
        guard case .decodeError = closes[0].1 else {
            Issue.record("expected .decodeError, got \(closes[0].1)")
            return
        }
        #expect(ts.events.items.messages.isEmpty)
        try await ts.stop(client)
    }

    @Test func binaryUnderJSONIsADecodeError() async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        try client.sendBinary([0x94, 0xa0, 0xa0, 0xa0, 0xc0])
        let close = try await client.receiveClose()
        #expect(close.closeCode == 1003)
        let closes = try await ts.waitForCloses(1)
        guard case .decodeError = closes[0].1 else {
            Issue.record("expected .decodeError, got \(closes[0].1)")
            return
        }
        try await ts.stop(client)
    }

    @Test func serverShutdownClosesWith1001() async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        ts.server.shutdown()
        let close = try await client.receiveClose()
        #expect(close.closeCode == 1001)
        try client.sendClose(code: 1001)
        try await client.waitForEOF()
        try await ts.server.run()
        #expect(ts.events.items.closes.map(\.1) == [.shutdown])
    }

    @Test func idleTimeoutClosesASilentClient() async throws {
        let ts = try TestServer { o in
            o.pingInterval = .milliseconds(100)
            o.idleTimeout = .milliseconds(400)
        }
        let client = try await WSClient.connect(port: ts.port)
        // Read raw frames and never answer the pings.
        var pings = 0
        var close: WSFrame? = nil
        while close == nil {
            let frame = try await client.receiveFrame()
            if frame.opcode == Opcode.ping.rawValue { pings += 1 }
            if frame.opcode == Opcode.close.rawValue { close = frame }
        }
        #expect(pings >= 1, "a quiet session is pinged before it is closed")
        #expect(close?.closeCode == 1001)
        #expect(try await ts.waitForCloses(1)[0].1 == .idleTimeout)
        try await ts.stop(client)
    }

    @Test func answeringPingsKeepsASessionOpen() async throws {
        let ts = try TestServer { o in
            o.pingInterval = .milliseconds(100)
            o.idleTimeout = .milliseconds(1500)
        }
        let client = try await WSClient.connect(port: ts.port)
        // Answer pings until the session has outlived the idle timeout (18 x 100 ms > 1.5 s).
        // The margin for each answer (1.4 s) is generous: a loaded machine stalls threads.
        var pings = 0
        let start = ContinuousClock.now
        var log: [String] = []
        while pings < 18 {
            let frame = try await client.receiveFrame()
            log.append("\(frame) at \(ContinuousClock.now - start)")
            if frame.opcode == Opcode.ping.rawValue {
                pings += 1
                try client.send(opcode: .pong, frame.payload)
                log.append("pong at \(ContinuousClock.now - start)")
            } else {
                Issue.record("unexpected frame \(frame) after \(pings) pings: \(log)")
                break
            }
        }
        try client.send("still-here")
        #expect(try await client.receiveMessage().type == "still-here")
        #expect(ts.events.items.closes.isEmpty)
        try await ts.stop(client)
    }

    @Test func pingIsAnsweredWithItsPayload() async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        try client.sendPing([1, 2, 3, 0xff])
        let pong = try await client.receiveFrame()
        #expect(pong.opcode == Opcode.pong.rawValue)
        #expect(pong.payload == [1, 2, 3, 0xff])
        #expect(ts.events.items.messages.isEmpty, "control frames are not messages")
        try await ts.stop(client)
    }

    @Test func sendAfterCloseThrowsClosed() async throws {
        let results = Recorder<String>()
        let ts = try TestServer { o in
            o.onClose = { session, _ in
                do {
                    try session.send(Message(type: "late"))
                    results.append("sent")
                } catch let e as SessionError {
                    results.append("\(e == .closed ? "closed" : "other: \(e)") open=\(session.isOpen)")
                } catch {
                    results.append("error \(error)")
                }
            }
        }
        let client = try await WSClient.connect(port: ts.port)
        try client.send("hello")
        _ = try await client.receiveMessage()
        let session = try #require(try await ts.waitForMessage("hello").first?.0)
        #expect(session.isOpen)
        try client.sendClose()
        _ = try await client.receiveClose()
        #expect(try await results.wait("onClose") { !$0.isEmpty } == ["closed open=false"])
        #expect(throws: SessionError.closed) { try session.send(Message(type: "later")) }
        try await ts.stop(client)
    }

    @Test func closeFromAnotherThread() async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        try client.send("hello")
        _ = try await client.receiveMessage()
        let session = try #require(try await ts.waitForMessage("hello").first?.0)
        try session.close(code: 4321, reason: "from the test")
        let close = try await client.receiveClose()
        #expect(close.closeCode == 4321)
        #expect(close.closeReason == "from the test")
        try client.sendClose(code: 4321)
        #expect(try await ts.waitForCloses(1)[0].1 == .serverClosed(code: 4321, reason: "from the test"))
        try await ts.stop(client)
    }

    /// A code a server may not send, or a reason too long for a close frame, throws and
    /// leaves the session open (it used to close with 1000 instead, hiding the bug).
    @Test(arguments: [UInt16(0), 999, 1002, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
    func invalidCloseCodeThrows(_ code: UInt16) async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        try client.send("hello")
        _ = try await client.receiveMessage()
        let session = try #require(try await ts.waitForMessage("hello").first?.0)
        #expect(throws: SessionError.invalidCloseCode(code)) { try session.close(code: code, reason: "no") }
        #expect(session.isOpen)
        try client.send("still")
        #expect(try await client.receiveMessage().type == "still")
        try await ts.stop(client)
    }

    @Test func closeReasonOver123BytesThrows() async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        try client.send("hello")
        _ = try await client.receiveMessage()
        let session = try #require(try await ts.waitForMessage("hello").first?.0)
        let long = String(repeating: "é", count: 62)  // 124 bytes in 62 characters
        #expect(throws: SessionError.closeReasonTooLong(bytes: 124)) { try session.close(code: 4000, reason: long) }
        #expect(session.isOpen)
        let longest = String(repeating: "é", count: 61) + "x"  // 123 bytes
        try session.close(code: 1014, reason: longest)
        let close = try await client.receiveClose()
        #expect(close.closeCode == 1014)
        #expect(close.closeReason == longest)
        try client.sendClose(code: 1014)
        #expect(try await ts.waitForCloses(1)[0].1 == .serverClosed(code: 1014, reason: longest))
        try await ts.stop(client)
    }
}
