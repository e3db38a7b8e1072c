// Publish/subscribe across event loops and codecs.
//
// "Exactly once" and "nothing" are checked without waiting for silence: after the message
// under test, a marker is published to a topic every client is subscribed to. Publishes
// from one thread reach each subscriber in order, so everything a client receives before
// the marker is everything the message under test delivered to it.

import Live
import Testing

/// The handler of the pub/sub tests. JSON and MessagePack clients speak the same messages:
/// - `sub`/`unsub` with a topic: (un)subscribe, answered with `subscribed`/`unsubscribed`;
/// - `shout` with a topic: publishes `shouted` (the body) to it, then `end` to `all`;
/// - anything else is echoed.
private func pubsubHandler(threads: Recorder<UInt>? = nil) -> TestServer.Handler {
    { server, session, message in
        switch message.type {
        case "sub":
            threads?.append(currentThreadID())
            do {
                try server.pubsub.subscribe(session, to: message.topic)
                try session.send(Message(type: "subscribed", topic: message.topic))
            } catch {
                try? session.send(Message(type: "error", body: Bytes("\"\(error)\"")))
            }
        case "unsub":
            try? server.pubsub.unsubscribe(session, from: message.topic)
            try? session.send(Message(type: "unsubscribed", topic: message.topic))
        case "shout":
            try? server.pubsub.publish(Message(type: "shouted", topic: message.topic, body: message.body), to: message.topic)
            try? server.pubsub.publish(Message(type: "end", topic: "all"), to: "all")
        default:
            try? session.send(message)
        }
    }
}

extension WSClient {
    /// Subscribes a JSON client and waits for the acknowledgement.
    func subscribe(_ topic: String) async throws {
        try send("sub", topic: topic)
        let ack = try await receiveMessage()
        guard ack == Message(type: "subscribed", topic: topic) else {
            throw TestClientError.unexpected("subscribing to \(topic): got \(ack)")
        }
    }

    func unsubscribe(_ topic: String) async throws {
        try send("unsub", topic: topic)
        let ack = try await receiveMessage()
        guard ack == Message(type: "unsubscribed", topic: topic) else {
            throw TestClientError.unexpected("unsubscribing from \(topic): got \(ack)")
        }
    }

    /// Subscribes a MessagePack client and waits for the acknowledgement.
    func subscribeMsgPack(_ topic: String) async throws {
        try sendBinary(try encodeMsgPack(Message(type: "sub", topic: topic)))
        let ack = try decodeMsgPack(try await receiveBinary())
        guard ack == Message(type: "subscribed", topic: topic) else {
            throw TestClientError.unexpected("subscribing to \(topic): got \(ack)")
        }
    }
}

/// Every client's JSON messages up to and including the first of type `type`, read in
/// parallel.
private func receiveAll(_ clients: [WSClient], through type: String) async throws -> [[Message]] {
    try await withThrowingTaskGroup(of: (Int, [Message]).self) { group in
        for (i, c) in clients.enumerated() {
            group.addTask { (i, try await c.receiveMessages(through: type)) }
        }
        var out = [[Message]](repeating: [], count: clients.count)
        for try await (i, messages) in group { out[i] = messages }
        return out
    }
}

@Suite struct PubSubTests {
    @Test func fanOutAcrossEventLoops() async throws {
        let threads = Recorder<UInt>()
        let ts = try TestServer({ o in o.eventLoops = 2 }, onMessage: pubsubHandler(threads: threads))
        // Connect at least 8 clients, and more until both loops have some (the kernel
        // spreads connections over the loops' listeners).
        var clients: [WSClient] = []
        while clients.count < 8 || (Set(threads.items).count < 2 && clients.count < 64) {
            let c = try await WSClient.connect(port: ts.port)
            try await c.subscribe("all")
            clients.append(c)
        }
        #expect(Set(threads.items).count == 2, "clients on both event loops")

        let subscribers = clients.indices.filter { $0 % 2 == 0 }
        for i in subscribers { try await clients[i].subscribe("room") }
        // subscribing twice is a no-op
        try await clients[0].subscribe("room")

        // from the test's thread, which is no event loop
        try ts.pubsub.publish(Message(type: "news", topic: "room", body: #"{"n":1}"#), to: "room")
        try ts.pubsub.publish(Message(type: "end", topic: "all"), to: "all")
        var received = try await receiveAll(clients, through: "end")
        for (i, messages) in received.enumerated() {
            if subscribers.contains(i) {
                #expect(messages == [Message(type: "news", topic: "room", body: #"{"n":1}"#), Message(type: "end", topic: "all")],
                        "subscriber \(i)")
            } else {
                #expect(messages == [Message(type: "end", topic: "all")], "non-subscriber \(i)")
            }
        }

        // from inside onMessage, on one of the loops
        try clients[1].send("shout", topic: "room", body: #""hi""#)
        received = try await receiveAll(clients, through: "end")
        for (i, messages) in received.enumerated() {
            if subscribers.contains(i) {
                #expect(messages == [Message(type: "shouted", topic: "room", body: #""hi""#), Message(type: "end", topic: "all")],
                        "subscriber \(i)")
            } else {
                #expect(messages == [Message(type: "end", topic: "all")], "non-subscriber \(i)")
            }
        }
        try await ts.stop(clients)
    }

    @Test func eachCodecGetsItsOwnEncoding() async throws {
        let ts = try TestServer({ o in o.eventLoops = 2 }, onMessage: pubsubHandler())
        let json = try await WSClient.connect(port: ts.port)
        let (msgpack, _) = try await WSClient.connect(port: ts.port, protocols: ["live.v1.msgpack"])
        try await json.subscribe("mixed")
        try await msgpack.subscribeMsgPack("mixed")

        let m = Message(type: "m", topic: "mixed", ref: "r", body: #"{"k":[1,"é"]}"#)
        try ts.pubsub.publish(m, to: "mixed")
        #expect(try await json.receiveText() == #"{"type":"m","topic":"mixed","ref":"r","body":{"k":[1,"é"]}}"#)
        #expect(try decodeMsgPack(try await msgpack.receiveBinary()) == m)

        // A body that is not JSON reaches only the MessagePack subscriber.
        let skippedBefore = ts.server.skippedEncodes
        let blob = Message(type: "blob", topic: "mixed", body: [0xff, 0x00, 0x01])
        try ts.pubsub.publish(blob, to: "mixed")
        try ts.pubsub.publish(Message(type: "end", topic: "mixed"), to: "mixed")
        #expect(try decodeMsgPack(try await msgpack.receiveBinary()) == blob)
        #expect(try decodeMsgPack(try await msgpack.receiveBinary()) == Message(type: "end", topic: "mixed"))
        #expect(try await json.receiveMessage() == Message(type: "end", topic: "mixed"), "the blob is skipped")
        #expect(ts.server.skippedEncodes == skippedBefore + 1)
        // and the JSON session is still open
        try json.send("echo", body: "1")
        #expect(try await json.receiveMessage() == Message(type: "echo", body: "1"))
        #expect(ts.events.items.closes.isEmpty)
        try await ts.stop(json, msgpack)
    }

    @Test func unsubscribeRemoves() async throws {
        let ts = try TestServer(onMessage: pubsubHandler())
        let a = try await WSClient.connect(port: ts.port)
        let b = try await WSClient.connect(port: ts.port)
        for c in [a, b] {
            try await c.subscribe("all")
            try await c.subscribe("room")
        }
        try await a.unsubscribe("room")
        try await a.unsubscribe("never-subscribed")  // a no-op
        try ts.pubsub.publish(Message(type: "news", topic: "room"), to: "room")
        try ts.pubsub.publish(Message(type: "end", topic: "all"), to: "all")
        #expect(try await a.receiveMessages(through: "end") == [Message(type: "end", topic: "all")])
        #expect(try await b.receiveMessages(through: "end") == [Message(type: "news", topic: "room"), Message(type: "end", topic: "all")])

        // from the test's thread: unsubscribe b, resubscribe a (in order with the publish)
        let sessions = ts.events.items.sessions(sending: "sub")
        try #require(sessions.count == 2)
        try ts.pubsub.unsubscribe(sessions[1], from: "room")
        try ts.pubsub.subscribe(sessions[0], to: "room")
        try ts.pubsub.publish(Message(type: "news2", topic: "room"), to: "room")
        try ts.pubsub.publish(Message(type: "end", topic: "all"), to: "all")
        #expect(try await a.receiveMessages(through: "end") == [Message(type: "news2", topic: "room"), Message(type: "end", topic: "all")])
        #expect(try await b.receiveMessages(through: "end") == [Message(type: "end", topic: "all")])
        try await ts.stop(a, b)
    }

    @Test func closedSessionsAreRemoved() async throws {
        let ts = try TestServer({ o in o.eventLoops = 2 }, onMessage: pubsubHandler())
        let a = try await WSClient.connect(port: ts.port)
        let b = try await WSClient.connect(port: ts.port)
        try await a.subscribe("room")
        try await b.subscribe("room")
        let aSession = try #require(ts.events.items.sessions(sending: "sub").first)

        try a.sendClose()
        _ = try await a.receiveClose()
        try await a.waitForEOF()
        _ = try await ts.waitForClose(of: aSession)
        // publishing to the topic afterwards does not touch the closed session
        try ts.pubsub.publish(Message(type: "after", topic: "room"), to: "room")
        #expect(try await b.receiveMessage() == Message(type: "after", topic: "room"))
        // a closed session cannot subscribe again
        #expect(throws: SessionError.closed) { try ts.pubsub.subscribe(aSession, to: "room") }

        // a new subscriber still works
        let c = try await WSClient.connect(port: ts.port)
        try await c.subscribe("room")
        try ts.pubsub.publish(Message(type: "again", topic: "room"), to: "room")
        #expect(try await b.receiveMessage() == Message(type: "again", topic: "room"))
        #expect(try await c.receiveMessage() == Message(type: "again", topic: "room"))
        try await ts.stop(b, c)
    }

    @Test func invalidTopics() async throws {
        let ts = try TestServer(onMessage: pubsubHandler())
        let a = try await WSClient.connect(port: ts.port)
        try a.send("hello")
        _ = try await a.receiveMessage()
        let session = try #require(try await ts.waitForMessage("hello").first?.0)
        #expect(throws: SessionError.invalidTopic) { try ts.pubsub.subscribe(session, to: "") }
        #expect(throws: SessionError.invalidTopic) { try ts.pubsub.publish(Message(type: "x"), to: "") }
        // Options.maxTopicLength is 255 bytes unless configured
        let huge = String(repeating: "t", count: 256)
        #expect(throws: SessionError.invalidTopic) { try ts.pubsub.subscribe(session, to: huge) }
        #expect(throws: SessionError.invalidTopic) { try ts.pubsub.publish(Message(type: "x"), to: huge) }
        // the longest topic is fine
        let longest = String(repeating: "t", count: 255)
        try ts.pubsub.subscribe(session, to: longest)
        try ts.pubsub.publish(Message(type: "long"), to: longest)
        #expect(try await a.receiveMessage() == Message(type: "long"))
        // publishing to a topic nobody is subscribed to is fine
        try ts.pubsub.publish(Message(type: "x"), to: "nobody")
        try await ts.stop(a)
    }
}

extension TestServer {
    func stop(_ clients: [WSClient]) async throws {
        server.shutdown()
        clients.forEach { $0.drop() }
        try await server.run()
    }
}

@Suite struct TopicPolicyTests {
    /// Options.topicPolicies reaches the core: a throttled topic sends the first of a burst
    /// at once and only the newest of the rest when the interval ends.
    @Test func throttleSendsFirstAndLast() async throws {
        let ts = try TestServer(
            { o in o.topicPolicies = [.init(prefix: "tick:", throttle: .milliseconds(200))] },
            onMessage: { server, session, message in
                switch message.type {
                case "sub":
                    try? server.pubsub.subscribe(session, to: message.topic)
                    try? session.send(Message(type: "subscribed", topic: message.topic))
                case "burst":
                    for i in 0..<50 {
                        try? server.pubsub.publish(Message(type: "v", topic: "tick:a", body: Bytes("\(i)")), to: "tick:a")
                    }
                default: break
                }
            })
        let client = try await WSClient.connect(port: ts.port)
        try await client.subscribe("tick:a")
        try client.send("burst")
        var bodies: [String] = []
        while bodies.last != "49" {
            bodies.append(try await client.receiveMessage().body.string)
        }
        #expect(bodies.first == "0")
        #expect(bodies.count <= 3, "\(bodies)")
        try await ts.stop(client)
    }
}
