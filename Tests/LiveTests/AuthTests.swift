// onAuth: accepting with Meta, rejecting, async authorisation, and what a Request holds.

import HTTPTypes
import Live
import Testing

struct NotAllowed: Error {}

@Suite struct AuthTests {
    @Test func acceptedMetaIsVisibleInHandlers() async throws {
        let ts = try TestServer({ o in
            o.onAuth = { request in
                guard let user = request.queryValue("user") else { throw Rejection(status: .unauthorized) }
                return ["user": .string(user), "admin": true, "quota": 5]
            }
        }, onMessage: { _, session, message in
            let user = session.meta.string("user") ?? "?"
            try? session.send(Message(type: "whoami", ref: message.ref, body: Bytes("\"\(user)\"")))
        })
        let client = try await WSClient.connect(port: ts.port, path: "/?user=alice")
        try client.send("hello", ref: "1")
        let reply = try await client.receiveMessage()
        #expect(reply == Message(type: "whoami", ref: "1", body: #""alice""#))

        let session = try #require(try await ts.waitForMessage("hello").first?.0)
        #expect(session.meta == ["user": "alice", "admin": true, "quota": 5])
        #expect(session.meta.bool("admin") == true)
        #expect(session.meta.int("quota") == 5)

        try client.sendClose()
        _ = try await client.receiveClose()
        let reason = try await ts.waitForClose(of: session)
        #expect(reason == .clientClosed(code: 1000, reason: ""))
        try await ts.stop(client)
    }

    @Test func rejectionAnswersItsStatusAndBody() async throws {
        let ts = try TestServer { o in
            o.onAuth = { _ in throw Rejection(status: .forbidden, body: "no access to this room") }
        }
        let (_, response) = try await WSClient.handshake(port: ts.port, path: "/room/secret")
        #expect(response.status == 403)
        #expect(response.bodyString == "no access to this room")
        #expect(response.header("sec-websocket-accept") == nil)
        #expect(ts.events.items.requests.count == 1)
        try await ts.stop()
        #expect(ts.events.items.closes.isEmpty, "onClose is only for accepted sessions")
    }

    @Test func otherErrorsAnswer401WithoutDetail() async throws {
        let ts = try TestServer { o in
            o.onAuth = { _ in throw NotAllowed() }
        }
        let (_, response) = try await WSClient.handshake(port: ts.port)
        #expect(response.status == 401)
        #expect(response.body.isEmpty)
        #expect(!response.bodyString.contains("NotAllowed"))
        try await ts.stop()
        #expect(ts.events.items.closes.isEmpty)
    }

    @Test func asyncOnAuthMayAwait() async throws {
        let gate = Gate()
        let ts = try TestServer { o in
            o.onAuth = { request in
                await gate.wait()
                return ["waited": true]
            }
        }
        // The request goes out and, right behind it, a message: the server must hold the
        // message until onAuth accepts, then handle it.
        let client = try await WSClient.tcp(port: ts.port)
        try client.sendUpgradeRequest(port: ts.port)
        try await ts.events.wait("onAuth to be called") { !$0.requests.isEmpty }
        try client.send("early")
        gate.open()
        let response = try await client.readResponse()
        #expect(response.status == 101)
        #expect(try await client.receiveMessage() == Message(type: "early"))
        let session = try #require(try await ts.waitForMessage("early").first?.0)
        #expect(session.meta.bool("waited") == true)
        try await ts.stop(client)
    }

    @Test func requestFields() async throws {
        let ts = try TestServer { o in
            o.onAuth = { _ in [:] }
        }
        let (client, response) = try await WSClient.connect(
            port: ts.port, path: "/rooms/a%20b?name=J%C3%B6rg&x=a+b&flag&empty=&enc%3Dkey=v%26w&name=second",
            protocols: ["nope", "live.v1.msgpack"], headers: [("X-Test", "hello"), ("X-Multi", "one")])
        #expect(response.status == 101)
        let request = try #require(ts.events.items.requests.first)
        #expect(request.method == .get)
        #expect(request.path == "/rooms/a%20b")
        #expect(request.query == "name=J%C3%B6rg&x=a+b&flag&empty=&enc%3Dkey=v%26w&name=second")
        #expect(request.queryItems.map { [$0.name, $0.value] } == [
            ["name", "Jörg"], ["x", "a b"], ["flag", ""], ["empty", ""], ["enc=key", "v&w"], ["name", "second"],
        ])
        #expect(request.queryValue("name") == "Jörg")
        #expect(request.queryValue("missing") == nil)
        #expect(request.headers[HTTPField.Name("X-Test")!] == "hello")
        #expect(request.headers[HTTPField.Name("x-multi")!] == "one")
        #expect(request.headers[HTTPField.Name("Host")!] == "127.0.0.1:\(ts.port)")
        #expect(request.headers[.upgrade]?.lowercased() == "websocket")
        #expect(request.remoteAddress == "127.0.0.1:\(client.localPort)")
        #expect(request.subprotocol == "live.v1.msgpack")
        try await ts.stop(client)
    }

    @Test func requestWithoutSubprotocol() async throws {
        let ts = try TestServer { o in
            o.onAuth = { _ in [:] }
        }
        let client = try await WSClient.connect(port: ts.port, path: "/plain")
        let request = try #require(ts.events.items.requests.first)
        #expect(request.subprotocol == nil)
        #expect(request.path == "/plain")
        #expect(request.query == "")
        #expect(request.queryItems.isEmpty)
        try await ts.stop(client)
    }

    @Test func plainHTTPGoesToOnHTTPOr426() async throws {
        let ts = try TestServer { o in
            o.onHTTP = { request in
                Response(status: .ok, contentType: "text/plain", body: Bytes("ok \(request.path) \(request.queryValue("q") ?? "")"))
            }
        }
        let client = try await WSClient.tcp(port: ts.port)
        try client.writeAll(Array("GET /health?q=a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        let response = try await client.readResponse()
        #expect(response.status == 200)
        #expect(response.header("content-type") == "text/plain")
        #expect(response.bodyString == "ok /health a/b")
        try await ts.stop(client)

        let bare = try TestServer()
        let other = try await WSClient.tcp(port: bare.port)
        try other.writeAll(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        let upgradeRequired = try await other.readResponse()
        #expect(upgradeRequired.status == 426)
        #expect(upgradeRequired.header("upgrade") == "websocket")  // RFC 9110 asks for it
        try await bare.stop(other)
    }

    /// A rejection's headers go into the HTTP response (checked with a raw HTTP client).
    @Test func rejectionCarriesHeaders() async throws {
        let ts = try TestServer { o in
            o.onAuth = { request in
                if request.path == "/busy" {
                    throw Rejection(status: .tooManyRequests, headers: [.retryAfter: "30"], body: "slow down")
                }
                throw Rejection(status: .unauthorized, headers: [.wwwAuthenticate: #"Bearer realm="live""#])
            }
        }
        let client = try await WSClient.tcp(port: ts.port)
        try client.sendUpgradeRequest(port: ts.port)
        let response = try await client.readResponse()
        #expect(response.status == 401)
        #expect(response.header("www-authenticate") == #"Bearer realm="live""#)
        #expect(response.header("sec-websocket-accept") == nil)

        let (_, busy) = try await WSClient.handshake(port: ts.port, path: "/busy")
        #expect(busy.status == 429)
        #expect(busy.header("retry-after") == "30")
        #expect(busy.bodyString == "slow down")
        try await ts.stop(client)
    }

    /// The onAuth task of a client that disconnects is cancelled (awaited, not slept on:
    /// onAuth reports its cancellation). The handshake timeout is far away, so only the
    /// disconnect can end it.
    ///
    /// The core watches a connection whose upgrade is being decided for a hangup only, so
    /// a client that leaves then is noticed at once, not at the handshake timeout.
    @Test func onAuthIsCancelledWhenTheClientLeaves() async throws {
        let outcome = Recorder<String>()
        let ts = try TestServer { o in
            o.handshakeTimeout = .seconds(120)
            o.onAuth = { _ in await sleepReportingCancellation(outcome) }
        }
        let client = try await WSClient.tcp(port: ts.port)
        try client.sendUpgradeRequest(port: ts.port)
        try await ts.events.wait("onAuth to be called") { !$0.requests.isEmpty }
        client.drop()
        let log = try await outcome.wait("onAuth to end", timeout: .seconds(5)) { !$0.isEmpty }
        #expect(log == ["cancelled"])
        ts.server.shutdown()
        try await ts.server.run()
        #expect(ts.events.items.closes.isEmpty, "a session that never opened has no onClose")
    }

    @Test func onAuthIsCancelledByTheHandshakeTimeout() async throws {
        let outcome = Recorder<String>()
        let ts = try TestServer { o in
            // long enough for the request to reach onAuth on a loaded machine (under ASan)
            o.handshakeTimeout = .seconds(1)
            o.onAuth = { _ in await sleepReportingCancellation(outcome) }
        }
        let client = try await WSClient.tcp(port: ts.port)
        try client.sendUpgradeRequest(port: ts.port)
        try await ts.events.wait("onAuth to be called") { !$0.requests.isEmpty }
        #expect(try await outcome.wait("onAuth to end") { !$0.isEmpty } == ["cancelled"])
        try await ts.stop(client)
        #expect(ts.events.items.closes.isEmpty)
    }

}

/// What an onAuth that waits an hour does: records "cancelled" when its task is cancelled
/// (and then refuses), "slept" if the hour passed.
@Sendable private func sleepReportingCancellation(_ outcome: Recorder<String>) async -> Meta {
    do {
        try await Task.sleep(for: .seconds(3600))
        outcome.append("slept")
    } catch {
        outcome.append(error is CancellationError ? "cancelled" : "\(error)")
    }
    return [:]
}
