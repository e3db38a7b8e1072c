import CoreMetrics
import Logging

/// How a `Server` behaves: codecs, limits, timeouts and the handlers.
///
/// Every default is what a public-facing server wants; `docs/CORE.md` gives each reason.
/// Every option is range-checked when a `Server` is created, which throws an
/// `OptionsError` naming the first one out of range.
public struct Options: Sendable {
    /// The codec of a client that asks for no subprotocol (or none the server speaks); a
    /// client may also ask for it by name.
    public var codec: any Codec = JSONCodec()
    /// The codecs a client may choose by subprotocol, in addition to `codec`.
    public var codecs: [any Codec] = [JSONCodec(), MessagePackCodec()]

    /// Frames queued per session before it is closed as too slow (4008).
    public var queueSize = 1024
    /// Bytes queued per session before it is closed as too slow (one frame always fits).
    public var queueBytes = 16 << 20
    /// The largest message a client may send (else 1009).
    public var maxMessageSize = 16 << 20
    /// The most frames one message may be split into (else 1009).
    public var maxFragments = 131_072
    /// The largest HTTP request head (else 431).
    public var maxRequestHeadSize = 8192
    /// Connections at once; more are answered 503. `nil`: no limit.
    public var maxSessions: Int? = nil

    // What one client can make the server hold (issue 11). Each bound is checked where the
    // client asks for more, so a hostile but well-formed client meets it early.

    /// Topics one session may be subscribed to at once; one more makes `subscribe` throw
    /// `SessionError.tooManyTopics`. Default 128: far more than a page's views need, and it
    /// caps the memory and unsubscribe work one session's close costs.
    public var maxTopicsPerSession = 128
    /// Topics registered on all event loops together (a topic subscribed on two loops
    /// counts twice); past it `subscribe` throws `SessionError.tooManyTopics`. Default
    /// 1,000,000: some hundreds of MiB of registry at most, so that many clients each
    /// inventing topic names cannot exhaust memory.
    public var maxTopics = 1_000_000
    /// Bytes in a topic name (UTF-8), 1 to 65,535; a longer one makes `subscribe` and
    /// `publish` throw `SessionError.invalidTopic`. Default 255: room for any sensible
    /// name, while a registry of `maxTopics` names stays bounded.
    public var maxTopicLength = 255
    /// Bytes in a received message's `ref` (UTF-8); a longer one closes the session with
    /// 1008 "ref too long" (`CloseReason.decodeError`) before `onMessage` sees it.
    /// Default 128: a ref is an id the client picks to match replies, and it is echoed
    /// back in every reply, so a long one would multiply what the client makes us send.
    public var maxRefLength = 128
    /// Bytes queued for all sessions together. Past it, the sessions with the largest
    /// queues are closed as too slow (4008) until it is met again. Default 1 GiB: a
    /// server-wide ceiling under `queueBytes` per session, so that many slow readers
    /// cannot add up to more memory than the machine has.
    public var maxQueuedBytesTotal = 1 << 30
    /// Connections at once from one IPv4 address or IPv6 /64; more are answered 429.
    /// `nil` (the default): no limit, because a load balancer or a NAT puts many users
    /// behind one address; set it when clients connect directly.
    public var maxSessionsPerIP: Int? = nil
    /// Let other processes listen on the same port (`SO_REUSEPORT` across processes): the
    /// kernel then splits new connections between them, and with them the topics and
    /// presence. Default false, so that a second server on a taken port fails to listen
    /// instead of silently taking half the connections.
    public var sharePort = false
    /// Time for the request to arrive and be accepted (including `onAuth`).
    public var handshakeTimeout: Duration = .seconds(10)
    /// A session quiet this long is pinged.
    public var pingInterval: Duration = .seconds(30)
    /// A session silent this long is closed (1001).
    public var idleTimeout: Duration = .seconds(60)
    /// How long a closing session waits for the client's close frame; also bounds a
    /// graceful shutdown.
    public var closeTimeout: Duration = .seconds(3)
    /// Event loops (threads); `nil`: one per CPU this process may use.
    public var eventLoops: Int? = nil
    /// Origins allowed to upgrade (exact `Origin` values, e.g. `https://app.example`);
    /// others get 403. Empty: any origin.
    public var allowedOrigins: [String] = []
    public var logger = Logger(label: "live")
    /// How often the core's counters are reported through swift-metrics (docs/METRICS.md);
    /// nil: only when `Server.reportMetrics()` is called. Metrics go wherever
    /// `MetricsSystem.bootstrap` sent them before the server was created (nowhere by default).
    public var metricsInterval: Duration? = .seconds(5)
    /// Where metrics go instead of `MetricsSystem.factory` (e.g. a test's recorder, or a
    /// backend for this server alone); nil: the bootstrapped system's.
    public var metricsFactory: (any MetricsFactory)? = nil
    /// How topics behave, by prefix (the first match wins): throttling and "latest value
    /// wins". Topics that match none are plain.
    public var topicPolicies: [TopicPolicy] = []
    /// Inbound rate limiting per session. `nil`: off.
    public var rateLimit: RateLimit? = nil
    /// Presence: who is in each topic, and join/leave events. `nil`: off.
    public var presence: PresenceOptions? = nil
    /// Carries publishes to and from the other server processes ("nodes") that serve the
    /// same topics, e.g. `RedisBroker` from the `LiveRedis` product.
    /// `nil` (the default): this process is the whole world.
    public var broker: (any Broker)? = nil
    /// This node's id among the nodes of a broker: in each `Envelope` it publishes, so that
    /// its own messages are not delivered twice. With a broker it also begins every session
    /// id ("<nodeID>-<n>"), so that ids are unique across nodes. Default: 12 random hex
    /// digits, new for every process.
    public var nodeID: String = Options.randomNodeID()
    /// permessage-deflate (RFC 7692) for clients that offer it. `nil` (the default): off,
    /// because compression costs CPU on every message and pays only for text-heavy
    /// traffic on slow links. A published message is compressed once for every
    /// subscriber that negotiated it.
    public var compression: Compression? = nil

    /// How permessage-deflate is used (see `compression`).
    public struct Compression: Sendable {
        /// Messages with fewer bytes go uncompressed: below about 128 bytes deflate saves
        /// little and often adds some.
        public var minSize: Int
        /// zlib level, 1 (fastest) to 9 (smallest).
        public var level: Int
        /// `nil` (the default): clients are told not to keep their compression context
        /// between messages, so no session holds zlib state while idle. 9-15: a client may
        /// keep it, bounded to a 2^bits window, and its session then holds an inflate
        /// stream of about 7 KiB + 2^bits bytes for its whole life.
        public var clientContextWindowBits: Int?

        public init(minSize: Int = 128, level: Int = 6, clientContextWindowBits: Int? = nil) {
            self.minSize = minSize
            self.level = level
            self.clientContextWindowBits = clientContextWindowBits
        }
    }

    /// Decides whether an upgrade may proceed and what the session's `Meta` is. Runs in a
    /// task, so it may await I/O; the connection waits (up to `handshakeTimeout`). Throw
    /// `Rejection` to answer with its status, headers and body; any other error answers
    /// 401 without detail. The task is cancelled when the client disconnects or the
    /// handshake times out first (its answer then goes nowhere), so an `onAuth` that
    /// awaits cancellable work stops early. `nil`: every upgrade is accepted with empty
    /// `Meta`.
    public var onAuth: (@Sendable (Request) async throws -> Meta)? = nil

    /// Called for each decoded message, on the session's event-loop thread, in arrival
    /// order. It must not block: hand slow work to a `Task` (see the README).
    public var onMessage: (@Sendable (Session, Message) -> Void)? = nil

    /// Called exactly once per session that opened (`onAuth` accepted it and the
    /// handshake completed), when it ends, after it was unsubscribed from every topic. On
    /// the session's event-loop thread.
    public var onClose: (@Sendable (Session, CloseReason) -> Void)? = nil

    /// Answers plain HTTP requests on the same port (a health check, a page). Runs in a
    /// task, cancelled when the client disconnects first. `nil`: 426.
    public var onHTTP: (@Sendable (Request) async -> Response)? = nil

    public init() {}

    /// 12 random hex digits: a node id that another process is unlikely to share.
    public static func randomNodeID() -> String {
        var g = SystemRandomNumberGenerator()
        let n = g.next() & 0xFFFF_FFFF_FFFF
        let hex = String(n, radix: 16)
        return String(repeating: "0", count: 12 - hex.count) + hex
    }

    /// How the topics that start with `prefix` behave.
    public struct TopicPolicy: Sendable, Hashable {
        public var prefix: String
        /// At most one publish per interval reaches the subscribers (on each event loop);
        /// the newest one held back goes out when the interval ends, so the final state is
        /// never lost. `nil`: no throttle.
        public var throttle: Duration?
        /// "Latest value wins": while a subscriber still has an unsent message of the topic
        /// in its queue, a newer one replaces it instead of queueing behind it, so a slow
        /// dashboard sees the newest value and its queue does not overflow.
        public var latestValueWins: Bool

        public init(prefix: String, throttle: Duration? = nil, latestValueWins: Bool = false) {
            self.prefix = prefix
            self.throttle = throttle
            self.latestValueWins = latestValueWins
        }
    }

    /// A token bucket per session: a session may send `messagesPerSecond` messages a second
    /// and bursts of `burst`; messages over the limit are dropped (and counted), and a
    /// session that stays over it longer than `grace` is closed with 1008
    /// (`CloseReason.rateLimited`). It stays over until its bucket has refilled halfway.
    public struct RateLimit: Sendable, Hashable {
        public var messagesPerSecond: Int
        public var burst: Int
        public var grace: Duration

        public init(messagesPerSecond: Int, burst: Int? = nil, grace: Duration = .seconds(5)) {
            self.messagesPerSecond = messagesPerSecond
            self.burst = burst ?? messagesPerSecond
            self.grace = grace
        }
    }

    /// The codec table: `codecs`, then `codec` if it is not among them. A session's slot
    /// in it selects the frame a publish sends it.
    var codecTable: [any Codec] {
        codecs.contains { $0.name == codec.name } ? codecs : codecs + [codec]
    }

    var defaultCodecSlot: Int { codecTable.firstIndex { $0.name == codec.name }! }
}
