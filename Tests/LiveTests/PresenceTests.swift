// Presence through real sockets: what an entry may cost (the public field's byte cap), how
// big one event may be, and who with a limit.

import Foundation
import Live
import Testing

/// `sub` subscribes and answers `subscribed`; anything else is echoed.
private let presenceHandler: TestServer.Handler = { server, session, message in
    if message.type == "sub" {
        try? server.pubsub.subscribe(session, to: message.topic)
        try? session.send(Message(type: "subscribed", topic: message.topic))
    } else {
        try? session.send(message)
    }
}

/// A server with presence on, `name` from the query as the public field.
private func presenceServer(_ configure: @escaping (inout PresenceOptions) -> Void = { _ in }) throws -> TestServer {
    try TestServer({ options in
        var presence = PresenceOptions()
        presence.publicField = "name"
        configure(&presence)
        options.presence = presence
        options.onAuth = { request in ["name": .string(request.queryValue("name") ?? "")] }
    }, onMessage: presenceHandler)
}

private func join(_ server: TestServer, name: String, topic: String) async throws -> WSClient {
    let query = name.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
    let client = try await WSClient.connect(port: server.port, path: "/?name=\(query)")
    try client.send("sub", topic: topic)
    var m = try await client.receiveMessage()
    while m.type == "presence" { m = try await client.receiveMessage() }
    #expect(m == Message(type: "subscribed", topic: topic))
    return client
}

/// The entries of presence events `client` receives, until `done` holds for them.
private func presenceEntries(
    _ client: WSClient, until done: ([[String: Any]]) -> Bool
) async throws -> (entries: [[String: Any]], eventSizes: [Int]) {
    var entries: [[String: Any]] = [], sizes: [Int] = []
    while !done(entries) {
        let m = try await client.receiveMessage()
        #expect(m.type == "presence")
        let body = try JSONSerialization.jsonObject(with: Data(Array(m.body))) as! [String: Any]
        let joined = body["joined"] as? [[String: Any]] ?? []
        sizes.append(joined.count + (body["left"] as? [Any] ?? []).count)
        entries += joined
    }
    return (entries, sizes)
}

@Suite struct PresenceTests {
    @Test func aPublicFieldIsCutToMaxBytesAtAScalarBoundary() async throws {
        let server = try presenceServer { $0.maxPublicFieldBytes = 8 }
        let watcher = try await join(server, name: "w", topic: "t")
        _ = try await presenceEntries(watcher) { $0.count >= 1 }
        // one Character of 41 bytes: 8 bytes would split the fourth accent (bytes 8-9)
        let heavy = "a" + String(repeating: "\u{301}", count: 20)
        let other = try await join(server, name: heavy, topic: "t")
        let (entries, _) = try await presenceEntries(watcher) { $0.count >= 1 }
        let cut = "a" + String(repeating: "\u{301}", count: 3)
        #expect(entries.map { $0["name"] as? String } == [cut])
        let who = try JSONSerialization.jsonObject(with: Data(Array(server.server.presence.whoJSON("t")))) as! [[String: Any]]
        #expect(Set(who.compactMap { $0["name"] as? String }) == [cut, "w"])
        // a value that fits is shown whole
        let exact = try await join(server, name: "12345678", topic: "t")
        #expect(try await presenceEntries(watcher) { $0.count >= 1 }.entries.map { $0["name"] as? String } == ["12345678"])
        try await server.stop(watcher, other, exact)
    }

    @Test func aBatchIsSplitIntoEventsOfMaxEventEntries() async throws {
        // a long batch interval and one loop: the joins below land in one batch
        let server = try presenceServer {
            $0.maxEventEntries = 2
            $0.batchInterval = .seconds(1)
        }
        let watcher = try await join(server, name: "w", topic: "t")
        _ = try await presenceEntries(watcher) { $0.count >= 1 }
        var joiners: [WSClient] = []
        for i in 0..<5 { joiners.append(try await join(server, name: "j\(i)", topic: "t")) }
        let (entries, sizes) = try await presenceEntries(watcher) { $0.count >= 5 }
        #expect(sizes.allSatisfy { $0 <= 2 }, "event sizes \(sizes)")
        #expect(entries.compactMap { $0["name"] as? String }.sorted() == (0..<5).map { "j\($0)" })
        try await server.stop(joiners + [watcher])
    }

    @Test func whoWithALimitCopiesAtMostThatMany() async throws {
        let server = try presenceServer { $0.events = false }
        var clients: [WSClient] = []
        for i in 0..<5 { clients.append(try await join(server, name: "m\(i)", topic: "t")) }
        let presence = server.server.presence
        let all = presence.who("t")
        #expect(all.count == 5)
        let two = presence.who("t", limit: 2)
        #expect(two.count == 2 && Set(two).isSubset(of: Set(all)))
        #expect(presence.who("t", limit: 0).isEmpty)
        #expect(presence.who("t", limit: 100).count == 5)
        #expect(presence.count("t") == 5)
        let json = try JSONSerialization.jsonObject(with: Data(Array(presence.whoJSON("t", limit: 3)))) as! [Any]
        #expect(json.count == 3)
        try await server.stop(clients)
    }
}
