// Choosing a session's codec by subprotocol, including a codec defined here.

import Live
import Testing

/// A codec of this test suite: one text line `type topic body`, for example
/// `greet room hello world`. Type and topic may not be empty or contain spaces.
struct LinesCodec: Codec {
    let name = "test.v1.lines"

    func encode(_ message: Message) throws -> Frame {
        guard !message.type.isEmpty, !message.topic.isEmpty,
            !message.type.contains(" "), !message.topic.contains(" ")
        else { throw CodecError.unencodable("type and topic must be single words") }
        return Frame(kind: .text, payload: Bytes("\(message.type) \(message.topic) \(message.body.string)"))
    }

    func decode(_ frame: Frame) throws -> Message {
        guard frame.kind == .text else { throw CodecError.wrongFrameKind(expected: .text) }
        let parts = frame.payload.string.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw CodecError.malformed("expected `type topic body`")
        }
        return Message(type: String(parts[0]), topic: String(parts[1]), body: Bytes(String(parts[2])))
    }
}

/// A server whose handler answers "whoami" with the session's subprotocol and codec (as a
/// JSON string, so that every codec can carry it), and
/// echoes everything else.
private func negotiationServer(_ configure: (inout Options) -> Void = { _ in }) throws -> TestServer {
    try TestServer(configure) { _, session, message in
        if message.type == "whoami" {
            let body = "\"\(session.subprotocol ?? "-") \(session.codec.name)\""  // a JSON string
            try? session.send(Message(type: "you", topic: "are", body: Bytes(body)))
        } else {
            try? session.send(message)
        }
    }
}

@Suite struct NegotiationTests {
    @Test func messagePackIsNegotiated() async throws {
        let ts = try negotiationServer()
        let (client, response) = try await WSClient.connect(port: ts.port, protocols: ["live.v1.msgpack"])
        #expect(response.header("sec-websocket-protocol") == "live.v1.msgpack")
        let hello = Message(type: "hello", topic: "t", ref: "1", body: [0, 1, 0xff])
        try client.sendBinary(try encodeMsgPack(hello))
        #expect(try decodeMsgPack(try await client.receiveBinary()) == hello)
        let session = try #require(try await ts.waitForMessage("hello").first?.0)
        #expect(session.subprotocol == "live.v1.msgpack")
        #expect(session.codec.name == "live.v1.msgpack")
        // a text frame is the wrong kind for MessagePack: 1003
        try client.sendText(json("hello"))
        #expect(try await client.receiveClose().closeCode == 1003)
        guard case .decodeError = try await ts.waitForClose(of: session) else {
            Issue.record("expected .decodeError")
            return
        }
        try await ts.stop(client)
    }

    @Test func noOfferGetsTheDefaultCodec() async throws {
        let ts = try negotiationServer()
        let (client, response) = try await WSClient.connect(port: ts.port)
        #expect(response.header("sec-websocket-protocol") == nil)
        try client.send("hello", body: "[1]")
        #expect(try await client.receiveText() == #"{"type":"hello","body":[1]}"#)
        let session = try #require(try await ts.waitForMessage("hello").first?.0)
        #expect(session.subprotocol == nil)
        #expect(session.codec.name == "live.v1.json")
        try await ts.stop(client)
    }

    @Test func unknownOffersGetTheDefaultCodec() async throws {
        let ts = try negotiationServer()
        let (client, response) = try await WSClient.connect(port: ts.port, protocols: ["chat", "live.v2.json"])
        #expect(response.status == 101)
        #expect(response.header("sec-websocket-protocol") == nil)
        try client.send("whoami")
        #expect(try await client.receiveMessage().body.string == #""- live.v1.json""#)
        try await ts.stop(client)
    }

    @Test func theFirstKnownOfferWins() async throws {
        let ts = try negotiationServer()
        let (client, response) = try await WSClient.connect(
            port: ts.port, protocols: ["chat", "live.v1.json", "live.v1.msgpack"])
        #expect(response.header("sec-websocket-protocol") == "live.v1.json")
        try client.send("whoami")
        #expect(try await client.receiveMessage().body.string == #""live.v1.json live.v1.json""#)
        try await ts.stop(client)
    }

    @Test func customCodecIsNegotiatedAndUsedBothWays() async throws {
        let ts = try TestServer({ o in
            o.codecs = [JSONCodec(), MessagePackCodec(), LinesCodec()]
        }) { server, session, message in
            switch message.type {
            case "greet":
                try? session.send(Message(type: "reply", topic: message.topic, body: Bytes("got \(message.body.string)")))
            case "sub":
                try? server.pubsub.subscribe(session, to: message.topic)
                try? session.send(Message(type: "subscribed", topic: message.topic))
            default:
                break
            }
        }
        let (lines, response) = try await WSClient.connect(port: ts.port, protocols: ["test.v1.lines"])
        #expect(response.header("sec-websocket-protocol") == "test.v1.lines")
        try lines.sendText("greet room hello world")
        #expect(try await lines.receiveText() == "reply room got hello world")
        let (session, message) = try #require(try await ts.waitForMessage("greet").first)
        #expect(message == Message(type: "greet", topic: "room", body: "hello world"))
        #expect(session.subprotocol == "test.v1.lines")
        #expect(session.codec.name == "test.v1.lines")

        // publishes are encoded with it too, next to a JSON subscriber
        let plain = try await WSClient.connect(port: ts.port)
        try lines.sendText("sub news -")
        try plain.send("sub", topic: "news")
        #expect(try await lines.receiveText() == "subscribed news ")
        #expect(try await plain.receiveMessage().type == "subscribed")
        try ts.pubsub.publish(Message(type: "headline", topic: "news", body: #""rain""#), to: "news")
        #expect(try await lines.receiveText() == #"headline news "rain""#)
        #expect(try await plain.receiveText() == #"{"type":"headline","topic":"news","body":"rain"}"#)

        // its decode errors close the session with 1007
        try lines.sendText("oops")
        #expect(try await lines.receiveClose().closeCode == 1007)
        guard case .decodeError = try await ts.waitForClose(of: session) else {
            Issue.record("expected .decodeError")
            return
        }
        try await ts.stop(lines, plain)
    }

    @Test func customDefaultCodecWithoutOffer() async throws {
        let ts = try negotiationServer { o in
            o.codec = LinesCodec()
            o.codecs = [JSONCodec()]
        }
        let (client, response) = try await WSClient.connect(port: ts.port)
        #expect(response.header("sec-websocket-protocol") == nil)
        try client.sendText("whoami x y")
        #expect(try await client.receiveText() == #"you are "- test.v1.lines""#)
        // JSON stays available by subprotocol
        let (json, jsonResponse) = try await WSClient.connect(port: ts.port, protocols: ["live.v1.json"])
        #expect(jsonResponse.header("sec-websocket-protocol") == "live.v1.json")
        try json.send("whoami")
        #expect(try await json.receiveMessage().body.string == #""live.v1.json live.v1.json""#)
        try await ts.stop(client, json)
    }

    /// `Options.codecs` is documented as "the codecs a client may choose by subprotocol, in
    /// addition to `codec`", so a client offering the default codec's name should have it
    /// agreed (and echoed, which browsers require once they offered a subprotocol).
    /// Today the 101 carries no Sec-WebSocket-Protocol and `session.subprotocol` is nil: the
    /// core is only given `options.codecs` as its subprotocol list (ServerCore.init), not the
    /// codec table that adds `options.codec`.
    @Test
    func customDefaultCodecByOffer() async throws {
        let ts = try negotiationServer { o in
            o.codec = LinesCodec()
            o.codecs = [JSONCodec()]
        }
        let (client, response) = try await WSClient.connect(port: ts.port, protocols: ["test.v1.lines"])
        #expect(response.header("sec-websocket-protocol") == "test.v1.lines")
        try client.sendText("whoami x y")
        #expect(try await client.receiveText() == #"you are "test.v1.lines test.v1.lines""#)
        #expect(try await ts.waitForMessage("whoami").first?.0.subprotocol == "test.v1.lines")
        try await ts.stop(client)
    }
}
