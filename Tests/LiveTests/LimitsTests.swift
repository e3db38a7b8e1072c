// Limits and refusals around the handshake, and sending what a codec cannot carry.

import Foundation
import Live
import Synchronization
import Testing

@Suite struct LimitsTests {
    @Test func maxSessionsAnswers503() async throws {
        let ts = try TestServer { o in o.maxSessions = 1 }
        let first = try await WSClient.connect(port: ts.port)
        try first.send("hello")
        _ = try await first.receiveMessage()
        let (_, refused) = try await WSClient.handshake(port: ts.port)
        #expect(refused.status == 503)
        // once the first is gone, there is room again
        try first.sendClose()
        _ = try await first.receiveClose()
        try await first.waitForEOF()
        _ = try await ts.waitForCloses(1)
        let third = try await WSClient.connect(port: ts.port)
        try third.send("hello")
        #expect(try await third.receiveMessage() == Message(type: "hello"))
        try await ts.stop(third)
    }

    @Test func allowedOrigins() async throws {
        let ts = try TestServer { o in o.allowedOrigins = ["https://app.example"] }
        let (_, wrong) = try await WSClient.handshake(port: ts.port, headers: [("Origin", "https://evil.example")])
        #expect(wrong.status == 403)
        let (client, right) = try await WSClient.connect(port: ts.port, headers: [("Origin", "https://app.example")])
        #expect(right.status == 101)
        try await ts.stop(client)
    }

    @Test func handshakeTimeoutWhileOnAuthIsPending() async throws {
        let gate = Gate()
        let ts = try TestServer { o in
            // long enough for the request to reach onAuth on a loaded machine (under ASan,
            // 200 ms sometimes passed before the client had written its request)
            o.handshakeTimeout = .seconds(3)
            o.onAuth = { _ in
                await gate.wait()
                return [:]
            }
        }
        let client = try await WSClient.tcp(port: ts.port)
        try client.sendUpgradeRequest(port: ts.port)
        try await ts.events.wait("onAuth to be called") { !$0.requests.isEmpty }
        // The server gives up on the handshake: the connection ends without a 101.
        do {
            let response = try await client.readResponse()
            #expect(response.status != 101)
        } catch TestClientError.eof {
            // closed without an answer: fine too
        }
        gate.open()  // onAuth accepts too late
        try await ts.stop(client)
        #expect(ts.events.items.closes.isEmpty, "a session that never opened has no onClose")
        #expect(ts.events.items.messages.isEmpty)
    }

    @Test func sendingAnUnencodableMessageThrowsTheCodecError() async throws {
        let outcome = Recorder<String>()
        let ts = try TestServer(onMessage: { _, session, message in
            do {
                try session.send(Message(type: "blob", body: [0xff, 0x00]))
                outcome.append("sent")
            } catch CodecError.unencodable {
                outcome.append("unencodable")
            } catch {
                outcome.append("\(error)")
            }
            try? session.send(message)
        })
        let client = try await WSClient.connect(port: ts.port)
        try client.send("hello")
        #expect(try await client.receiveMessage() == Message(type: "hello"), "the session stays open")
        #expect(outcome.items == ["unencodable"])
        try await ts.stop(client)
    }

    @Test func rawFramesBypassTheCodec() async throws {
        let ts = try TestServer(onMessage: { _, session, _ in
            try? session.send(Frame(kind: .binary, payload: [1, 2, 3]))
            try? session.send(Frame(kind: .text, payload: "plain text"))
        })
        let client = try await WSClient.connect(port: ts.port)
        try client.send("go")
        #expect(try await client.receiveBinary() == [1, 2, 3])
        #expect(try await client.receiveText() == "plain text")
        try await ts.stop(client)
    }
}

@Suite struct RequestDecodingTests {
    /// `queryItems` leaves an invalid escape as it is ("%zz" stays "%zz"), including one whose
    /// two characters start with a sign (regression: `UInt8("+4", radix: 16)` is 4, so "%+41"
    /// used to decode to the byte 0x04). The `+` after it still reads as a space, as in any
    /// form-encoded query.
    @Test
    func invalidPercentEscapesStayAsSent() async throws {
        let ts = try TestServer { o in o.onAuth = { _ in [:] } }
        let client = try await WSClient.connect(port: ts.port, path: "/?a=%zz&b=%+41&c=%-0x&d=%4")
        let request = try #require(ts.events.items.requests.first)
        #expect(request.queryValue("a") == "%zz")
        #expect(request.queryValue("b") == "% 41")
        #expect(request.queryValue("c") == "%-0x")
        #expect(request.queryValue("d") == "%4")
        try await ts.stop(client)
    }

    @Test func invalidPercentEscapesWithoutSign() async throws {
        let ts = try TestServer { o in o.onAuth = { _ in [:] } }
        let client = try await WSClient.connect(port: ts.port, path: "/?a=%zz&d=%4&e=%41%42")
        let request = try #require(ts.events.items.requests.first)
        #expect(request.queryValue("a") == "%zz")
        #expect(request.queryValue("d") == "%4")
        #expect(request.queryValue("e") == "AB")
        try await ts.stop(client)
    }
}

@Suite struct RateLimitTests {
    /// A client sending far over its limit has most messages dropped and is then closed
    /// with 1008, which onClose reports as `.rateLimited`.
    @Test func floodingIsDroppedThenClosed() async throws {
        let ts = try TestServer { o in
            o.rateLimit = .init(messagesPerSecond: 20, burst: 5, grace: .milliseconds(300))
        }
        let client = try await WSClient.connect(port: ts.port)
        let stop = Locked(false)
        let senderDone = Gate()
        // The load: 200 messages a second, ten times the limit, until the session is gone
        // (the sleep paces the load; the test waits on onClose, not on time).
        let sender = Thread {
            for _ in 0..<2000 where !stop.withLock({ $0 }) {
                try? client.send("flood")
                usleep(5000)
            }
            senderDone.open()
        }
        sender.start()
        let closes = try await ts.waitForCloses(1)
        stop.withLock { $0 = true }
        await senderDone.wait()  // the client is not dropped while the sender still uses it
        #expect(closes[0].1 == .rateLimited)
        let delivered = ts.events.items.messages.count
        #expect(delivered >= 5 && delivered < 100, "\(delivered) messages got through")
        try await ts.stop(client)
    }
}
