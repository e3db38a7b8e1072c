// What one hostile but well-formed client can make the server hold (issue 11): topics per
// session and in all, topic length, ref length.

import Live
import Testing

/// `sub` with a topic subscribes (on the session's loop) and answers `subscribed`, or
/// `refused` with the error's description; `unsub` unsubscribes; anything else is echoed.
private let subscribeHandler: TestServer.Handler = { server, session, message in
    switch message.type {
    case "sub":
        do {
            try server.pubsub.subscribe(session, to: message.topic)
            try? session.send(Message(type: "subscribed", topic: message.topic))
        } catch let error as SessionError {
            try? session.send(Message(type: "refused", topic: message.topic, body: Bytes(quotedJSON("\(error)"))))
        } catch {
            try? session.send(Message(type: "failed", topic: message.topic))
        }
    case "unsub":
        try? server.pubsub.unsubscribe(session, from: message.topic)
        try? session.send(Message(type: "unsubscribed", topic: message.topic))
    default:
        try? session.send(message)
    }
}

/// A JSON string literal for plain ASCII text without quotes or backslashes.
private func quotedJSON(_ s: String) -> String { "\"" + s + "\"" }

extension WSClient {
    /// Asks the server to subscribe this session and returns its answer's type.
    fileprivate func trySubscribe(_ topic: String) async throws -> Message {
        try send("sub", topic: topic)
        return try await receiveMessage()
    }
}

@Suite struct ClientLimitsTests {
    @Test func topicsPerSessionAreCapped() async throws {
        let ts = try TestServer({ o in o.maxTopicsPerSession = 3 }, onMessage: subscribeHandler)
        let client = try await WSClient.connect(port: ts.port)
        for topic in ["a", "b", "c"] {
            #expect(try await client.trySubscribe(topic).type == "subscribed")
        }
        let refused = try await client.trySubscribe("d")
        #expect(refused.type == "refused")
        #expect(String(decoding: refused.body, as: UTF8.self).contains("maxTopicsPerSession"))
        // subscribing again to a topic it holds is not a new topic
        #expect(try await client.trySubscribe("a").type == "subscribed")
        #expect(ts.server.stats.refusedSubscribes == 1)
        // the session is still open, and after leaving a topic there is room for another
        try client.send("unsub", topic: "b")
        #expect(try await client.receiveMessage().type == "unsubscribed")
        #expect(try await client.trySubscribe("d").type == "subscribed")
        let session = try #require(ts.events.items.sessions(sending: "sub").first)
        #expect(Set(try await session.inspect().topics) == ["a", "c", "d"])
        try await ts.stop(client)
    }

    @Test func topicsInAllAreCapped() async throws {
        let ts = try TestServer({ o in o.maxTopics = 2 }, onMessage: subscribeHandler)
        let a = try await WSClient.connect(port: ts.port)
        let b = try await WSClient.connect(port: ts.port)
        #expect(try await a.trySubscribe("one").type == "subscribed")
        #expect(try await b.trySubscribe("two").type == "subscribed")
        // a third topic is refused to anyone; an existing topic still takes subscribers
        let refused = try await b.trySubscribe("three")
        #expect(refused.type == "refused")
        #expect(String(decoding: refused.body, as: UTF8.self).contains("maxTopics"))
        #expect(try await b.trySubscribe("one").type == "subscribed")
        #expect(ts.server.stats.refusedSubscribes == 1)
        try await ts.stop(a, b)
    }

    @Test func topicLengthIsCapped() async throws {
        let ts = try TestServer({ o in o.maxTopicLength = 10 }, onMessage: subscribeHandler)
        let client = try await WSClient.connect(port: ts.port)
        #expect(try await client.trySubscribe(String(repeating: "t", count: 10)).type == "subscribed")
        let refused = try await client.trySubscribe(String(repeating: "t", count: 11))
        #expect(refused.type == "refused")
        #expect(String(decoding: refused.body, as: UTF8.self) == quotedJSON("\(SessionError.invalidTopic)"))
        #expect(throws: SessionError.invalidTopic) {
            try ts.pubsub.publish(Message(type: "x"), to: String(repeating: "t", count: 11))
        }
        try await ts.stop(client)
    }

    /// A ref over `maxRefLength` ends the session with 1008 before `onMessage` sees the
    /// message; one at the limit is fine.
    @Test func refTooLongClosesWith1008() async throws {
        let ts = try TestServer { o in o.maxRefLength = 16 }
        let client = try await WSClient.connect(port: ts.port)
        try client.send("fine", ref: String(repeating: "r", count: 16))
        #expect(try await client.receiveMessage().ref.utf8.count == 16)
        try client.send("long", ref: String(repeating: "é", count: 8) + "x")  // 17 bytes
        let close = try await client.receiveClose()
        #expect(close.closeCode == 1008)
        #expect(close.closeReason == "ref too long")
        try client.sendClose(code: 1008)
        let reason = try #require(try await ts.waitForCloses(1).first?.1)
        guard case .decodeError(let why) = reason else {
            Issue.record("expected .decodeError, got \(reason)")
            return
        }
        #expect(why.hasPrefix("ref too long"))
        #expect(ts.events.items.messages.map(\.1.type) == ["fine"], "onMessage never saw the long ref")
        try await ts.stop(client)
    }

    @Test func defaultRefLimitIs128Bytes() async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        try client.send("fine", ref: String(repeating: "r", count: 128))
        #expect(try await client.receiveMessage().type == "fine")
        try client.send("long", ref: String(repeating: "r", count: 129))
        #expect(try await client.receiveClose().closeCode == 1008)
        try await ts.stop(client)
    }

    @Test func sessionsPerIPAreCapped() async throws {
        let ts = try TestServer { o in o.maxSessionsPerIP = 1 }
        let first = try await WSClient.connect(port: ts.port)
        try first.send("hello")
        _ = try await first.receiveMessage()
        let (_, refused) = try await WSClient.handshake(port: ts.port)
        #expect(refused.status == 429)
        try await ts.stop(first)
    }

    /// Past `maxQueuedBytesTotal`, the session with the largest queue is closed as too
    /// slow, although its own `queueBytes` would have let it queue more.
    @Test func totalQueuedBytesAreCapped() async throws {
        let ts = try TestServer({ o in
            o.queueBytes = 256 << 20
            o.maxQueuedBytesTotal = 8 << 20
        }, onMessage: { _, session, _ in
            // far more than the socket buffers and the budget hold, to a client not reading
            let frame = Frame(kind: .text, payload: Bytes(String(repeating: "x", count: 1 << 20)))
            for _ in 0..<32 { try? session.send(frame) }
        })
        let client = try await WSClient.connect(port: ts.port)
        try client.send("flood")
        let closes = try await ts.waitForCloses(1)
        #expect(closes[0].1 == .queueOverflow)
        #expect(ts.server.stats.budgetCloses == 1)
        try await ts.stop(client)
    }

}
