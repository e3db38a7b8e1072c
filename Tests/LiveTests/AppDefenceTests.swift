// What an app needs to defend itself (issue 11 §6): find a session by id, see what it
// holds, read the server's counters, broadcast, and clear errors after shutdown.

import Foundation
import Live
import Testing

@Suite struct AppDefenceTests {
    @Test func sessionsAreFoundByIdWhileOpen() async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        try client.send("hello")
        _ = try await client.receiveMessage()
        let session = try #require(try await ts.waitForMessage("hello").first?.0)
        #expect(ts.server.session(id: session.id) === session)
        #expect(ts.server.session(id: "0") == nil)
        #expect(ts.server.session(id: "not a number") == nil)
        // an app closes an abusive session it only knows the id of
        try #require(ts.server.session(id: session.id)).close(code: 4003, reason: "banned")
        #expect(try await client.receiveClose().closeCode == 4003)
        try client.sendClose(code: 4003)
        _ = try await ts.waitForClose(of: session)
        #expect(ts.server.session(id: session.id) == nil, "gone by the time onClose runs")
        try await ts.stop(client)
    }

    @Test func registryDropsTheSessionBeforeOnClose() async throws {
        let seen = Recorder<Bool>()
        let box = ServerRef()
        let ts = try TestServer { o in
            o.onClose = { session, _ in seen.append(box.server?.session(id: session.id) != nil) }
        }
        box.server = ts.server
        let client = try await WSClient.connect(port: ts.port)
        client.drop()
        #expect(try await seen.wait("onClose") { !$0.isEmpty } == [false])
        try await ts.stop()
    }

    @Test func inspectShowsTopicsAndQueue() async throws {
        let ts = try TestServer({ o in o.queueBytes = 256 << 20 }) { server, session, message in
            switch message.type {
            case "sub":
                try? server.pubsub.subscribe(session, to: message.topic)
                try? session.send(Message(type: "subscribed"))
            case "flood":
                // far more than the socket buffers hold: the rest waits in the queue
                let frame = Frame(kind: .text, payload: Bytes(String(repeating: "x", count: 1 << 20)))
                for _ in 0..<32 { try? session.send(frame) }
            default:
                try? session.send(message)
            }
        }
        let client = try await WSClient.connect(port: ts.port)
        for topic in ["news", "chat/1", "ünïcode"] {
            try client.send("sub", topic: topic)
            #expect(try await client.receiveMessage().type == "subscribed")
        }
        let session = try #require(ts.events.items.sessions(sending: "sub").first)
        let before = try await session.inspect()
        #expect(before.isOpen)
        #expect(Set(before.topics) == ["news", "chat/1", "ünïcode"])
        #expect(before.queuedFrames == 0 && before.queuedBytes == 0)

        // the client stops reading; the server queues 32 MiB for it
        try client.send("flood")
        _ = try await ts.waitForMessage("flood")
        let flooded = try await session.inspect()
        #expect(flooded.queuedFrames > 0 && flooded.queuedFrames <= 32)
        #expect(flooded.queuedBytes > 0 && flooded.queuedBytes <= 32 * ((1 << 20) + 14))
        let stats = ts.server.stats
        #expect(stats.queuedBytes >= flooded.queuedBytes)
        #expect(stats.sessions == 1)
        #expect(stats.subscriptions == 3)

        client.drop()
        _ = try await ts.waitForClose(of: session)
        let after = try await session.inspect()
        #expect(!after.isOpen)
        #expect(after.queuedFrames == 0 && after.queuedBytes == 0 && after.topics.isEmpty)
        try await ts.stop()
    }

    /// From `onMessage` (the session's own loop) the snapshot includes the subscribe made
    /// just before it.
    @Test func inspectFromOnMessage() async throws {
        let ts = try TestServer(onMessage: { server, session, message in
            try? server.pubsub.subscribe(session, to: message.topic)
            Task {
                let topics = (try? await session.inspect().topics) ?? []
                try? session.send(Message(type: "topics", body: Bytes(String(topics.count))))
            }
        })
        let client = try await WSClient.connect(port: ts.port)
        try client.send("sub", topic: "a")
        #expect(try await client.receiveMessage() == Message(type: "topics", body: "1"))
        try await ts.stop(client)
    }

    @Test func statsCountSessionsAndMessages() async throws {
        let ts = try TestServer()
        #expect(ts.server.stats.sessions == 0)
        let a = try await WSClient.connect(port: ts.port)
        let b = try await WSClient.connect(port: ts.port)
        for c in [a, b] {
            try c.send("hello")
            _ = try await c.receiveMessage()
        }
        let stats = ts.server.stats
        #expect(stats.sessions == 2)
        #expect(stats.connections == 2)
        #expect(stats.messagesIn == 2)
        #expect(stats.overflows == 0 && stats.budgetCloses == 0 && stats.refusedSubscribes == 0)
        try await ts.stop(a, b)
    }

    @Test func broadcastReachesEverySessionInItsCodec() async throws {
        let ts = try TestServer()
        let json = try await WSClient.connect(port: ts.port)
        let (msgpack, _) = try await WSClient.connect(port: ts.port, protocols: ["live.v1.msgpack"])
        try json.send("hello")
        _ = try await json.receiveMessage()
        try msgpack.sendBinary(try encodeMsgPack(Message(type: "hello")))
        _ = try await msgpack.receiveBinary()

        let notice = Message(type: "notice", body: #""maintenance at noon""#)
        try ts.server.broadcast(notice)
        #expect(try await json.receiveMessage() == notice)
        #expect(try decodeMsgPack(try await msgpack.receiveBinary()) == notice)
        try await ts.stop(json, msgpack)
    }

    /// Publishing or broadcasting once the server is shutting down throws
    /// `SessionError.closed`, as documented (it used to be a `ServerError`).
    @Test func publishAndBroadcastAfterShutdownThrowClosed() async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        try await ts.stop(client)
        #expect(throws: SessionError.closed) { try ts.pubsub.publish(Message(type: "x"), to: "t") }
        #expect(throws: SessionError.closed) { try ts.server.broadcast(Message(type: "x")) }
    }

    @Test func publishWhileShuttingDownThrowsClosed() async throws {
        let ts = try TestServer()
        let client = try await WSClient.connect(port: ts.port)
        ts.server.shutdown()
        #expect(throws: SessionError.closed) { try ts.pubsub.publish(Message(type: "x"), to: "t") }
        try await ts.stop(client)
    }
}

/// A weak reference to the server, for a handler set before the server exists.
private final class ServerRef: @unchecked Sendable {
    weak var server: Server?
}
