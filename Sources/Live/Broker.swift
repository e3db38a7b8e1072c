import Synchronization

/// Carries publishes between server processes ("nodes") that serve the same topics, so
/// that a publish on any node reaches the subscribers of every node. Set one in
/// `Options.broker`; without one (the default) a server is the whole world, as before.
///
/// The seam is small on purpose, so that each distributed engine (Redis in `LiveRedis`;
/// NATS could be another) is one implementation of this protocol and the core never
/// changes for it:
/// - `interest(in:active:)` says when this node gains its first local subscriber of a
///   topic and loses its last one, so that the broker subscribes at the engine only to
///   topics someone here listens to (a NATS broker: `natsConnection_Subscribe` /
///   `natsSubscription_Unsubscribe` on a subject per topic);
/// - `publish(_:)` hands over each local publish, already delivered to this node's own
///   subscribers, as one codec-neutral `Envelope` (a NATS broker: one `natsConnection_Publish`);
/// - what the engine delivers from other nodes goes to `BrokerNode.deliver(_:)`, which
///   fans it out here exactly as a local publish does: encoded once per codec in use,
///   each frame built once and shared by every subscriber on every event loop.
///
/// Delivery between nodes is best-effort, like everything in Live: what a broker cannot
/// carry (its engine is away, its queue is full) it drops and counts.
///
/// Every method is called from event-loop threads (or the thread that publishes) and
/// must not block: hand the work to the broker's own thread.
public protocol Broker: Sendable {
    /// Called once when the server starts, before any other call.
    func start(node: BrokerNode) throws
    /// This node's first local subscriber of `topic` appeared (`active`), or its last one
    /// left. For each topic the calls alternate, starting with `active == true`.
    func interest(in topic: String, active: Bool)
    /// A publish made on this node, after it was delivered to this node's subscribers.
    func publish(_ envelope: Envelope)
    /// The server is shutting down: stop delivering and release the engine's resources.
    func shutdown()

    // Presence across nodes, optional: the defaults below keep `who` and `count` per node.

    /// This node's members of `topic` changed (with `Options.presence`): `joined` gives each
    /// new member's id and its entry as presence events show it (a JSON object or string),
    /// `left` the ids that left. On an event-loop thread; must not block.
    func presenceChanged(topic: String, joined: [(id: String, entry: String)], left: [String])
    /// The members of `topic` on every node, as JSON entries (at most `limit`), or nil when
    /// the broker keeps no presence or cannot answer now.
    func members(of topic: String, limit: Int) async -> [String]?
    /// How many members `topic` has on every node, or nil (as for `members`).
    func memberCount(of topic: String) async -> Int?
}

extension Broker {
    public func presenceChanged(topic: String, joined: [(id: String, entry: String)], left: [String]) {}
    public func members(of topic: String, limit: Int) async -> [String]? { nil }
    public func memberCount(of topic: String) async -> Int? { nil }
}

/// One publish as it travels between nodes: the message's fields, and the node it was
/// published on, so that the node does not deliver its own message twice.
public struct Envelope: Sendable, Hashable {
    public var message: Message
    /// The origin node's id (`Options.nodeID`).
    public var origin: String

    public init(message: Message, origin: String) {
        self.message = message
        self.origin = origin
    }
}

/// What a broker delivers into: this node's local fanout.
public final class BrokerNode: Sendable {
    /// This node's id (`Options.nodeID`).
    public let id: String
    private let core: WeakCore
    private let delivered = Atomic<Int>(0)
    private let ownDropped = Atomic<Int>(0)

    init(id: String, core: ServerCore) {
        self.id = id
        self.core = WeakCore(core)
    }

    /// Fans a message published on another node out to this node's subscribers of its
    /// topic, as a local publish does (without handing it back to the broker). A message
    /// whose origin is this node is dropped (counted): it was delivered when it was
    /// published. Any thread; returns without waiting for the deliveries.
    public func deliver(_ envelope: Envelope) {
        if envelope.origin == id {
            ownDropped.add(1, ordering: .relaxed)
            return
        }
        guard let core = core.value else { return }
        do {
            try core.publishLocally(envelope.message, to: envelope.message.topic)
            delivered.add(1, ordering: .relaxed)
        } catch {
            core.logger.debug("broker delivery dropped", metadata: [
                "topic": "\(envelope.message.topic)", "error": "\(error)",
            ])
        }
    }

    /// This node's members of a topic, as `Broker.presenceChanged` reports joins: for a
    /// broker that must write them again (its engine lost them). Any thread.
    public func presenceEntries(of topic: String) -> [(id: String, entry: String)] {
        guard let core = core.value, core.options.presence != nil else { return [] }
        return core.presenceEntries(Presence(core: core).localIDs(topic))
    }

    /// Messages from other nodes fanned out here so far.
    public var deliveredCount: Int { delivered.load(ordering: .relaxed) }
    /// This node's own messages that came back from the broker and were dropped.
    public var ownDroppedCount: Int { ownDropped.load(ordering: .relaxed) }
}

/// A weak reference that can be shared between threads: the broker may outlive the
/// server (the options hold it), and the server must not be kept alive by its broker.
final class WeakCore: @unchecked Sendable {
    // @unchecked: a weak reference is loaded and cleared atomically by the runtime.
    private weak var core: ServerCore?
    init(_ core: ServerCore) { self.core = core }
    var value: ServerCore? { core }
}
