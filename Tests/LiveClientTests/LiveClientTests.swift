// LiveClient against a real server (LiveRooms over Live, in process): round trips over both
// codecs, errors by ref, a server restart with rejoin, server closes, garbage, refusals.

import Foundation
import HTTPTypes
import Live
import LiveClient
import LiveRooms
import Testing

let codecs: [any Codec & Sendable] = [JSONCodec(), MessagePackCodec()]

@Suite struct LiveClientTests {
    @Test(arguments: [0, 1])
    func joinPublishWhoRoundTrip(codecIndex: Int) async throws {
        let codec = codecs[codecIndex]
        let srv = try RoomsServer()
        let a = try await LiveClient.connect(to: srv.url, codec: codec)
        let b = try await LiveClient.connect(to: srv.url, codec: codec)
        let inbox = a.messages(for: "room:1")
        try await a.join("room:1")
        try await b.publish(#"{"text":"hi","n":1}"#, to: "room:1")
        // presence events (a's own join) may come first: the publish is the "message"
        let m = try await first(inbox, "the published message") { $0.type == "message" }
        #expect(m.type == "message" && m.topic == "room:1")
        #expect(m.body.string == #"{"text":"hi","n":1}"#)
        #expect(try await a.count("room:1") == 1)
        let who = try JSONSerialization.jsonObject(with: Data(try await b.who("room:1"))) as? [Any]
        #expect(who?.count == 1)
        try await a.leave("room:1")
        #expect(try await a.count("room:1") == 0)
        await a.close()
        await b.close()
        try await srv.stop()
    }

    @Test(arguments: [0, 1])
    func errorsArriveByRef(codecIndex: Int) async throws {
        let srv = try RoomsServer()
        let c = try await LiveClient.connect(to: srv.url, codec: codecs[codecIndex])
        // two requests in flight at once: each gets its own answer
        let tooLong = Task { try await c.publish("1", to: String(repeating: "x", count: 300)) }
        let fine = Task { try await c.publish("2", to: "ok") }
        await #expect(throws: ClientError.server("topic too long")) { try await tooLong.value }
        try await fine.value
        await #expect(throws: ClientError.server("missing topic")) { try await c.join("") }
        await #expect(throws: ClientError.server("unknown type")) {
            _ = try await c.request(Message(type: "nonsense", topic: "t"))
        }
        await c.close()
        try await srv.stop()
    }

    @Test func restartRejoinsEveryTopic() async throws {
        let first1 = try RoomsServer()
        let port = first1.port
        var options = ClientOptions()
        options.minDelay = .milliseconds(20)
        options.maxDelay = .milliseconds(200)
        let c = try await LiveClient.connect(to: first1.url, options: options)
        try await c.join("a")
        try await c.join("b")
        let states = c.states
        let inbox = c.messages
        try await first1.stop()
        let second = try RoomsServer(port: port)
        // "open" comes once both topics are joined again
        let seen = Log<ConnectionState>()
        _ = try await first(states, "open again") { s in
            seen.append(s)
            return s == .open && seen.all.count > 1
        }
        let log = seen.all
        #expect(log.contains { if case .disconnected(.closedByServer(code: 1001, _)) = $0 { true } else { false } })
        #expect(log.contains { if case .waiting(attempt: 1, _) = $0 { true } else { false } })
        let p = try await LiveClient.connect(to: second.url)
        #expect(try await p.count("a") == 1)
        #expect(try await p.count("b") == 1)
        try await p.publish(#""after""#, to: "b")
        let m = try await first(inbox, "a message after the restart") { $0.topic == "b" && $0.type == "message" }
        #expect(m.body.string == #""after""#)
        await p.close()
        await c.close()
        try await second.stop()
    }

    @Test(arguments: [(4008 as UInt16, "slow consumer"), (1008, "rate limited")])
    func serverCloseIsReported(code: UInt16, reason: String) async throws {
        let srv = try RoomsServer { o in
            o.onMessage = { session, message in  // types Rooms does not know come here
                if message.type == "kick" { try? session.close(code: code, reason: reason) }
            }
        }
        var options = ClientOptions()
        options.reconnect = false
        let c = try await LiveClient.connect(to: srv.url, options: options)
        let states = c.states
        // the request in flight fails with why the session ended
        await #expect(throws: ClientError.closedByServer(code: Int(code), reason: reason)) {
            _ = try await c.request(Message(type: "kick"))
        }
        let end = try await first(states, "closed") { if case .closed = $0 { true } else { false } }
        #expect(end == .closed(.closedByServer(code: Int(code), reason: reason)))
        try await srv.stop()
    }

    /// A server whose "JSON" sessions get frames that are not JSON (text: 1007) or not text
    /// at all (binary: 1003).
    @Test(arguments: [("text", 1007 as UInt16, "undecodable message"), ("binary", 1003, "wrong frame kind")])
    func garbageFromTheServerIsClosedWithTheRightCode(kind: String, code: UInt16, why: String) async throws {
        let closes = Log<CloseReason>()
        var options = Options()
        options.eventLoops = 1
        options.logger.logLevel = .critical
        options.codec = RawCodec(name: "live.v1.json")
        options.codecs = [RawCodec(name: "live.v1.json")]
        options.onMessage = { session, _ in try? session.send(Message(type: kind, body: "not json {")) }
        options.onClose = { _, reason in closes.append(reason) }
        let server = try Server(options: options)
        try server.listen(port: 0)
        let task = Task { try await server.run() }
        var copts = ClientOptions()
        copts.reconnect = false
        let c = try await LiveClient.connect(to: URL(string: "ws://127.0.0.1:\(server.port)/")!, options: copts)
        let states = c.states
        try c.send(Message(type: "hello"))
        let end = try await first(states, "closed") { if case .closed = $0 { true } else { false } }
        #expect(end == .closed(.protocolError(code: Int(code), reason: why)))
        server.shutdown()
        try await task.value
        #expect(closes.all == [.clientClosed(code: code, reason: why)])
    }

    @Test func refusals() async throws {
        let srv = try RoomsServer { o in
            o.onAuth = { request in
                if request.query.contains("token=good") { return [:] }
                throw Rejection(status: .unauthorized)
            }
        }
        await #expect(throws: ClientError.rejected(status: 401, reason: "401 Unauthorized")) {
            _ = try await LiveClient.connect(to: URL(string: "ws://127.0.0.1:\(srv.port)/ws?token=bad")!)
        }
        let ok = try await LiveClient.connect(to: URL(string: "ws://127.0.0.1:\(srv.port)/ws?token=good")!)
        await ok.close()
        #expect(ok.state == .closed(nil))
        try await srv.stop()
        await #expect(throws: ClientError.connectFailed("connection refused")) {
            _ = try await LiveClient.connect(to: URL(string: "ws://127.0.0.1:\(srv.port)/ws")!)
        }
        await #expect(throws: ClientError.invalidArgument("only ws:// and wss:// URLs are supported: http://x/")) {
            _ = try await LiveClient.connect(to: URL(string: "http://x/")!)
        }
    }

    @Test func headersReachTheServer() async throws {
        let srv = try RoomsServer { o in
            o.onAuth = { request in
                if request.headers[HTTPField.Name("X-Token")!] == "secret" { return [:] }
                throw Rejection(status: .forbidden)
            }
        }
        await #expect(throws: ClientError.rejected(status: 403, reason: "403 Forbidden")) {
            _ = try await LiveClient.connect(to: srv.url)
        }
        let ok = try await LiveClient.connect(to: srv.url, headers: ["X-Token": "secret"])
        await ok.close()
        try await srv.stop()
    }
}
