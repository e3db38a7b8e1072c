// The broker seam (Options.broker): two servers in one process joined by an in-memory
// broker behave as two nodes. The broker delivers to every node that has interest in the
// topic, including the origin, so that "never delivered twice" is tested too.

import Live
import Synchronization
import Testing

/// An in-memory engine: topic interest per node, and delivery of each publish to every
/// node interested in its topic (the origin included, as Redis does).
private final class Hub: Sendable {
    let nodes = Mutex<[BrokerNode]>([])
    let interest = Mutex<[String: Set<String>]>([:])  // node id -> topics

    func publish(_ envelope: Envelope) {
        let targets = nodes.withLock { $0 }.filter { node in
            interest.withLock { $0[node.id, default: []].contains(envelope.message.topic) }
        }
        targets.forEach { $0.deliver(envelope) }
    }
}

private final class HubBroker: Broker {
    let hub: Hub
    let nodeID = Mutex<String>("")
    let events = Recorder<String>()

    init(_ hub: Hub) { self.hub = hub }

    func start(node: BrokerNode) throws {
        nodeID.withLock { $0 = node.id }
        hub.nodes.withLock { $0.append(node) }
    }

    func interest(in topic: String, active: Bool) {
        let id = nodeID.withLock { $0 }
        hub.interest.withLock { i in
            if active { i[id, default: []].insert(topic) } else { i[id]?.remove(topic) }
        }
        events.append((active ? "+" : "-") + topic)
    }

    func publish(_ envelope: Envelope) { hub.publish(envelope) }
    func shutdown() {}
}

/// `sub` and `unsub` with a topic (acknowledged), `shout`: publishes `shouted` and then
/// `end` to `all`.
private let handler: TestServer.Handler = { server, session, message in
    switch message.type {
    case "sub":
        try? server.pubsub.subscribe(session, to: message.topic)
        try? session.send(Message(type: "subscribed", topic: message.topic))
    case "unsub":
        try? server.pubsub.unsubscribe(session, from: message.topic)
        try? session.send(Message(type: "unsubscribed", topic: message.topic))
    case "shout":
        try? server.pubsub.publish(Message(type: "shouted", topic: message.topic, body: message.body), to: message.topic)
        try? server.pubsub.publish(Message(type: "end", topic: "all"), to: "all")
    default:
        break
    }
}

private func node(_ hub: Hub, id: String) throws -> (TestServer, HubBroker) {
    let broker = HubBroker(hub)
    let ts = try TestServer({ o in
        o.eventLoops = 2
        o.broker = broker
        o.nodeID = id
    }, onMessage: handler)
    return (ts, broker)
}

@Suite struct BrokerTests {
    @Test func aPublishReachesEveryNodeOnceAndOnlyInterestedNodesSubscribe() async throws {
        let hub = Hub()
        let (a, brokerA) = try node(hub, id: "a")
        let (b, brokerB) = try node(hub, id: "b")
        let onA = try await WSClient.connect(port: a.port).0
        let onB = try await WSClient.connect(port: b.port).0
        let (packedOnB, _) = try await WSClient.connect(port: b.port, protocols: ["live.v1.msgpack"])
        for c in [onA, onB] {
            try c.send("sub", topic: "all")
            _ = try await c.receiveMessage()
            try c.send("sub", topic: "room")
            _ = try await c.receiveMessage()
        }
        try packedOnB.sendBinary(try encodeMsgPack(Message(type: "sub", topic: "room")))
        #expect(try decodeMsgPack(try await packedOnB.receiveBinary()) == Message(type: "subscribed", topic: "room"))
        try packedOnB.sendBinary(try encodeMsgPack(Message(type: "sub", topic: "all")))
        _ = try await packedOnB.receiveBinary()
        // one interest per topic per node, however many local subscribers it has
        try await brokerA.events.wait("a's interest") { $0.count >= 2 }
        try await brokerB.events.wait("b's interest") { $0.count >= 2 }
        #expect(Set(brokerA.events.items) == ["+all", "+room"] && brokerA.events.items.count == 2)
        #expect(Set(brokerB.events.items) == ["+all", "+room"] && brokerB.events.items.count == 2)

        // from a client on a: its own node once (the hub's copy back is dropped), and b once
        try onA.send("shout", topic: "room", body: #"{"n":1}"#)
        let shouted = Message(type: "shouted", topic: "room", body: #"{"n":1}"#)
        let end = Message(type: "end", topic: "all")
        #expect(try await onA.receiveMessages(through: "end") == [shouted, end])
        #expect(try await onB.receiveMessages(through: "end") == [shouted, end])
        #expect(try decodeMsgPack(try await packedOnB.receiveBinary()) == shouted)
        #expect(try decodeMsgPack(try await packedOnB.receiveBinary()) == end)

        // the last subscriber on b leaves: b loses interest, a's publish no longer goes there
        for c in [onB] {
            try c.send("unsub", topic: "room")
            _ = try await c.receiveMessage()
        }
        packedOnB.drop()
        try await brokerB.events.wait("b's loss of interest") { $0.contains("-room") }
        try onA.send("shout", topic: "room", body: "2")
        #expect(try await onA.receiveMessages(through: "end").map(\.type) == ["shouted", "end"])
        #expect(try await onB.receiveMessages(through: "end") == [end])
        try await a.stop(onA)
        try await b.stop(onB)
    }
}
