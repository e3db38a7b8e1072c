import CLiveRedis
import Live
import Logging
import Synchronization

/// A `Broker` on Redis pub/sub: many server processes ("nodes") share their topics through
/// one Redis server.
///
/// - Each topic is a channel, `channelPrefix` + topic. A node is subscribed to a channel
///   exactly while it has a local subscriber to the topic (`Broker.interest`), so traffic
///   for topics nobody here listens to never reaches it.
/// - A publish is delivered to the node's own subscribers at once, then published once to
///   Redis in an envelope (MessagePack: format marker, origin node, type, topic, ref,
///   body). Redis writes it once to each subscribed node, which fans it out locally; the
///   origin skips its own copy.
/// - Sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`) is used when the server has it (Redis 7,
///   found with `COMMAND INFO SPUBLISH` on each connection), plain `SUBSCRIBE`/`PUBLISH`
///   otherwise; see docs/SCALING.md for what that means on a Redis Cluster.
/// - The client runs on a thread of its own (libuv), with one subscriber connection and
///   one publishing connection; nothing blocks an event loop. When Redis goes away, local
///   delivery goes on, cross-node publishes are dropped and counted, and the client
///   reconnects with backoff and jitter and subscribes again; each outage is logged once.
///
/// Delivery between nodes is best-effort: messages published while Redis is away are not
/// delivered to other nodes, and are not replayed.
public final class RedisBroker: Broker {
    public let url: RedisURL
    public let channelPrefix: String
    public let maxQueuedBytes: Int
    public let reconnectDelays: ClosedRange<Duration>
    public let useShardedPubSub: Bool
    public let presenceTTL: Duration?
    let context: Context
    private let client = Mutex<ClientHandle?>(nil)

    /// - Parameters:
    ///   - url: where Redis is; its password, if any, is sent with AUTH, its db with SELECT
    ///     (pub/sub channels are not per database: give nodes of separate apps on one Redis
    ///     different `channelPrefix`es).
    ///   - maxQueuedBytes: bytes of publishes waiting for Redis; past it publishes are
    ///     dropped (counted), so that a slow Redis cannot make the node hold ever more.
    ///   - reconnectDelays: the first and the longest delay between attempts (doubling,
    ///     with jitter).
    ///   - useShardedPubSub: false to stay on `SUBSCRIBE`/`PUBLISH` even on Redis 7.
    ///   - presenceTTL: with `Options.presence`, each node's members are kept in Redis too,
    ///     so that `who` and `count` (`Presence.whoJSONEverywhere`, `countEverywhere`) see
    ///     every node; a node refreshes its entries every third of this, so those of a node
    ///     that died disappear within it. `nil`: presence stays per node.
    public init(url: RedisURL, channelPrefix: String = "live:", maxQueuedBytes: Int = 8 << 20,
                reconnectDelays: ClosedRange<Duration> = .milliseconds(100)...(.seconds(5)),
                useShardedPubSub: Bool = true, presenceTTL: Duration? = .seconds(10),
                logger: Logger = Logger(label: "live.redis")) {
        self.url = url
        self.channelPrefix = channelPrefix
        self.maxQueuedBytes = maxQueuedBytes
        self.reconnectDelays = reconnectDelays
        self.useShardedPubSub = useShardedPubSub
        self.presenceTTL = presenceTTL
        context = Context(logger: logger)
    }

    deinit { shutdown() }

    public func start(node: BrokerNode) throws {
        context.node.withLock { $0 = node }
        let ms = { (d: Duration) in UInt32(clamping: d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000) }
        var made: OpaquePointer?
        let rc = url.host.withCString { host in
            channelPrefix.withCString { prefix in
                node.id.withCString { nodeID in
                    withOptionalCString(url.password) { password in
                        var config = lr_config()
                        config.host = host
                        config.port = UInt16(url.port)
                        config.password = password
                        config.db = UInt32(url.db)
                        config.prefix = prefix
                        config.node_id = nodeID
                        config.max_queued = maxQueuedBytes
                        config.backoff_min_ms = max(1, ms(reconnectDelays.lowerBound))
                        config.backoff_max_ms = max(1, ms(reconnectDelays.upperBound))
                        config.sharded = useShardedPubSub ? 1 : 0
                        config.presence_ttl_ms = presenceTTL.map { max(3, ms($0)) } ?? 0
                        config.on_ready = redisReady
                        config.deliver = redisDeliver
                        config.log = redisLog
                        config.user = Unmanaged.passUnretained(context).toOpaque()
                        return lr_client_new(&config, &made)
                    }
                }
            }
        }
        guard rc == 0, let made else { throw RedisURLError("cannot set up the Redis client for \(url)") }
        guard lr_client_start(made) == 0 else {
            lr_client_free(made)
            throw RedisURLError("cannot start the Redis client's thread")
        }
        let handle = ClientHandle(pointer: made)
        context.client.withLock { $0 = handle }
        client.withLock { $0 = handle }
    }

    public func interest(in topic: String, active: Bool) {
        context.topics.withLock { t in
            if active { t.insert(topic) } else { t.remove(topic) }
        }
        client.withLock { h in
            guard let c = h?.pointer else { return }
            var topic = topic
            topic.withUTF8 { lr_client_interest(c, $0.baseAddress, $0.count, active ? 1 : 0) }
        }
    }

    public func publish(_ envelope: Envelope) {
        // The client is only freed by shutdown, after the server stopped publishing; the
        // lock is held for the copy into the queue, which does not wait for Redis.
        client.withLock { h in
            guard let c = h?.pointer else { return }
            var (type, topic, ref) = (envelope.message.type, envelope.message.topic, envelope.message.ref)
            type.withUTF8 { t in
                topic.withUTF8 { tp in
                    ref.withUTF8 { r in
                        envelope.message.body.withUnsafeBytes { b in
                            var e = lr_envelope()
                            e.type = UnsafeRawPointer(t.baseAddress)?.assumingMemoryBound(to: CChar.self)
                            e.type_len = t.count
                            e.topic = UnsafeRawPointer(tp.baseAddress)?.assumingMemoryBound(to: CChar.self)
                            e.topic_len = tp.count
                            e.ref = UnsafeRawPointer(r.baseAddress)?.assumingMemoryBound(to: CChar.self)
                            e.ref_len = r.count
                            e.body = b.baseAddress?.assumingMemoryBound(to: UInt8.self)
                            e.body_len = b.count
                            e.body_json = envelope.message.bodyEncoding == .json ? 1 : 0
                            _ = lr_client_publish(c, &e)
                        }
                    }
                }
            }
        }
    }

    public func presenceChanged(topic: String, joined: [(id: String, entry: String)], left: [String]) {
        guard presenceTTL != nil else { return }
        client.withLock { h in
            guard let c = h?.pointer else { return }
            var topic = topic
            topic.withUTF8 { t in
                for (id, entry) in joined {
                    var (id, entry) = (id, entry)
                    id.withUTF8 { i in
                        entry.withUTF8 { e in
                            lr_client_presence_set(c, cchars(t), t.count, cchars(i), i.count, cchars(e), e.count)
                        }
                    }
                }
                for id in left {
                    var id = id
                    id.withUTF8 { i in lr_client_presence_del(c, cchars(t), t.count, cchars(i), i.count) }
                }
            }
        }
    }

    public func members(of topic: String, limit: Int) async -> [String]? {
        await ask(topic, limit: limit, countOnly: false).map(\.entries)
    }

    public func memberCount(of topic: String) async -> Int? {
        await ask(topic, limit: 0, countOnly: true).map(\.count)
    }

    private func ask(_ topic: String, limit: Int, countOnly: Bool) async -> Answer? {
        guard presenceTTL != nil else { return nil }
        return await withCheckedContinuation { (k: CheckedContinuation<Answer?, Never>) in
            let question = Unmanaged.passRetained(Question(k)).toOpaque()
            let asked = client.withLock { h -> Bool in
                guard let c = h?.pointer else { return false }
                var topic = topic
                topic.withUTF8 { t in
                    lr_client_who(c, cchars(t), t.count, UInt32(clamping: limit), countOnly ? 1 : 0, redisAnswer, question)
                }
                return true
            }
            if !asked { Unmanaged<Question>.fromOpaque(question).takeRetainedValue().k.resume(returning: nil) }
        }
    }

    public func shutdown() {
        context.client.withLock { $0 = nil }
        guard let c = client.withLock({ h -> OpaquePointer? in defer { h = nil }; return h?.pointer }) else { return }
        lr_client_stop(c)
        lr_client_free(c)
    }

    /// The broker's state and counters: a snapshot.
    public var stats: Stats {
        guard let s = client.withLock({ h -> lr_stats? in
            guard let c = h?.pointer else { return nil }
            var s = lr_stats()
            lr_client_stats(c, &s)
            return s
        }) else { return Stats() }
        return Stats(
            connected: s.connected != 0, sharded: s.sharded != 0, downFor: .milliseconds(Int64(s.down_ms)),
            outages: Int(s.outages), published: Int(s.published), droppedWhileDown: Int(s.dropped_down),
            droppedQueueFull: Int(s.dropped_full), received: Int(s.received), malformed: Int(s.malformed),
            ownSkipped: Int(s.own), topics: Int(s.topics))
    }

    public struct Stats: Sendable, Hashable {
        /// Both connections are up and ready.
        public var connected = false
        /// `SSUBSCRIBE`/`SPUBLISH` are in use.
        public var sharded = false
        /// How long the node has been cut off (zero while connected).
        public var downFor: Duration = .zero
        /// Times the node lost Redis (or could not reach it).
        public var outages = 0
        /// Publishes written to Redis.
        public var published = 0
        /// Publishes dropped because Redis was away.
        public var droppedWhileDown = 0
        /// Publishes dropped because the queue towards Redis was full.
        public var droppedQueueFull = 0
        /// Envelopes from other nodes received.
        public var received = 0
        /// Messages on the node's channels that were not valid envelopes (dropped).
        public var malformed = 0
        /// The node's own envelopes received back and skipped.
        public var ownSkipped = 0
        /// Topics the node has local subscribers to (and is subscribed to at Redis).
        public var topics = 0
    }

    /// What the client thread's callbacks reach.
    final class Context: Sendable {
        let logger: Logger
        let node = Mutex<BrokerNode?>(nil)
        /// Topics with local interest, whose presence entries are written again when
        /// Redis comes back (it may have lost them).
        let topics = Mutex<Set<String>>([])
        /// The client, for the callbacks that write through it.
        let client = Mutex<ClientHandle?>(nil)
        init(logger: Logger) { self.logger = logger }
    }
}

/// The C client, shared under the broker's lock (its functions are thread-safe).
struct ClientHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// A `who` or `count` answer from Redis.
struct Answer: Sendable {
    var entries: [String] = []
    var count = 0
}

/// A question waiting for its answer, passed through the C client as its context.
final class Question: Sendable {
    let k: CheckedContinuation<Answer?, Never>
    init(_ k: CheckedContinuation<Answer?, Never>) { self.k = k }
}

private func cchars(_ b: UnsafeBufferPointer<UInt8>) -> UnsafePointer<CChar>? {
    UnsafeRawPointer(b.baseAddress)?.assumingMemoryBound(to: CChar.self)
}

private let redisAnswer: lr_who_fn = { ctx, ok, entries, lens, n, count in
    guard let ctx else { return }
    let question = Unmanaged<Question>.fromOpaque(ctx).takeRetainedValue()
    guard ok != 0 else { return question.k.resume(returning: nil) }
    var answer = Answer(count: Int(count))
    if let entries, let lens {
        answer.entries = (0..<n).map { i in text(entries[i], lens[i]) }
    }
    question.k.resume(returning: answer)
}

/// Redis is (again) reachable: write this node's presence entries again, since a Redis
/// that restarted has none of them (their TTL makes any left from before harmless).
private let redisReady: @convention(c) (UnsafeMutableRawPointer?) -> Void = { user in
    guard let user else { return }
    let context = Unmanaged<RedisBroker.Context>.fromOpaque(user).takeUnretainedValue()
    guard let node = context.node.withLock({ $0 }), let c = context.client.withLock({ $0 })?.pointer else { return }
    for topic in context.topics.withLock({ $0 }) {
        var topic = topic
        let entries = node.presenceEntries(of: topic)
        topic.withUTF8 { t in
            for (id, entry) in entries {
                var (id, entry) = (id, entry)
                id.withUTF8 { i in
                    entry.withUTF8 { e in
                        lr_client_presence_set(c, cchars(t), t.count, cchars(i), i.count, cchars(e), e.count)
                    }
                }
            }
        }
    }
}

private func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let s else { return body(nil) }
    return s.withCString { body($0) }
}

private func text(_ p: UnsafePointer<CChar>?, _ n: Int) -> String {
    guard let p, n > 0 else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
}

private let redisDeliver: @convention(c) (UnsafePointer<lr_envelope>?, UnsafeMutableRawPointer?) -> Void = { e, user in
    guard let e = e?.pointee, let user else { return }
    let context = Unmanaged<RedisBroker.Context>.fromOpaque(user).takeUnretainedValue()
    guard let node = context.node.withLock({ $0 }) else { return }
    let message = Message(
        type: text(e.type, e.type_len), topic: text(e.topic, e.topic_len), ref: text(e.ref, e.ref_len),
        body: Bytes(UnsafeRawBufferPointer(start: e.body, count: e.body_len)),
        bodyEncoding: e.body_json != 0 ? .json : .opaque)
    node.deliver(Envelope(message: message, origin: text(e.origin, e.origin_len)))
}

private let redisLog: @convention(c) (Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = { level, line, user in
    guard let line, let user else { return }
    let context = Unmanaged<RedisBroker.Context>.fromOpaque(user).takeUnretainedValue()
    let text = String(cString: line)
    switch level {
    case 0: context.logger.info("\(text)")  // LR_LOG_INFO
    case 1: context.logger.warning("\(text)")  // LR_LOG_WARNING
    default: context.logger.error("\(text)")
    }
}
