import CLive

/// The core's counters (`Server.stats`), summed over event loops. Each is read atomically;
/// together they are a snapshot, not a consistent cut.
public struct Stats: Sendable, Hashable {
    /// Open TCP connections, in any state (handshake, open, closing).
    public var connections: Int
    /// Accepted WebSocket sessions not yet closed.
    public var sessions: Int
    /// (session, topic) pairs.
    public var subscriptions: Int
    /// Topics with at least one subscriber (counted once per event loop that has one).
    public var topics: Int
    /// Frames waiting in send queues.
    public var queuedFrames: Int
    /// Bytes waiting in send queues (bounded by `Options.maxQueuedBytesTotal`).
    public var queuedBytes: Int
    /// Sessions closed for overflowing their queue (4008), `budgetCloses` included.
    public var overflows: Int
    /// Published deliveries skipped because no frame was made for the session's codec.
    public var skipped: Int
    /// Data messages received.
    public var messagesIn: Int
    /// Frames fully written.
    public var framesOut: Int
    /// Received messages dropped by the rate limit.
    public var rateLimited: Int
    /// Sessions closed (4008) because `Options.maxQueuedBytesTotal` was reached.
    public var budgetCloses: Int
    /// Subscribes refused by `Options.maxTopicsPerSession` or `Options.maxTopics`.
    public var refusedSubscribes: Int
    /// Messages compressed for permessage-deflate: one per publish worth compressing,
    /// however many subscribers negotiated it.
    public var compressions: Int
    /// TLS handshakes completed on a TLS listener.
    public var tlsHandshakes: Int
    /// TLS connections that failed their handshake or a record (a client's failure,
    /// plain HTTP on a TLS port included).
    public var tlsFailures: Int
    /// Accepted sessions that closed, by why, as the core tells it: `.serverClosed` stands
    /// for every close the server made (`decodeError` included) and carries no code.
    public var closed: [CloseKind: Int]
    /// Upgrades answered with an HTTP status instead of 101, by the core (400, 403, 426,
    /// 429, 431, 503, 505) or by `onAuth`, by status; 0 stands for any status the core
    /// does not count by itself (see `clive_reject_status`).
    public var rejected: [Int: Int]
    /// `pubsub.publish` calls that reached the core.
    public var published: Int
    /// Frames queued to subscribers by publishes and broadcasts.
    public var deliveries: Int
    /// Bytes written to sockets.
    public var bytesOut: Int
    /// Queued frames a "latest value wins" publish replaced before they were sent.
    public var coalesced: Int
    /// Publishes a throttle held back on an event loop and then dropped for a newer one.
    public var throttled: Int
    /// Publishes queued on an event loop, each timed from the publish call to the frame in
    /// the loop's last subscriber's queue: how many, their total time in nanoseconds, and
    /// how many took under 2^i microseconds for each i (the last entry: the rest).
    public var fanouts: Int
    public var fanoutNanoseconds: Int
    public var fanoutHistogram: [Int]

    /// How an accepted session ended, as counted by the core.
    public enum CloseKind: Int, Sendable, Hashable, CaseIterable {
        case clientClosed = 1, serverClosed, protocolError, queueOverflow, idleTimeout, shutdown,
            connectionLost, rateLimited = 9

        /// The name in metrics, e.g. "queue_overflow".
        public var name: String {
            switch self {
            case .clientClosed: "client_closed"
            case .serverClosed: "server_closed"
            case .protocolError: "protocol_error"
            case .queueOverflow: "queue_overflow"
            case .idleTimeout: "idle_timeout"
            case .shutdown: "shutdown"
            case .connectionLost: "connection_lost"
            case .rateLimited: "rate_limited"
            }
        }
    }

    init(_ c: clive_stats) {
        connections = Int(clamping: c.connections)
        sessions = Int(clamping: c.sessions)
        subscriptions = Int(clamping: c.subscriptions)
        topics = Int(clamping: c.topics)
        queuedFrames = Int(clamping: c.queued_frames)
        queuedBytes = Int(clamping: c.queued_bytes)
        overflows = Int(clamping: c.overflows)
        skipped = Int(clamping: c.skipped)
        messagesIn = Int(clamping: c.messages_in)
        framesOut = Int(clamping: c.frames_out)
        rateLimited = Int(clamping: c.rate_limited)
        budgetCloses = Int(clamping: c.budget_closes)
        refusedSubscribes = Int(clamping: c.refused_subscribes)
        var c = c
        var closed: [CloseKind: Int] = [:], rejected: [Int: Int] = [:]
        withUnsafeBytes(of: &c.closed) { raw in
            let counts = raw.bindMemory(to: UInt64.self)
            for kind in CloseKind.allCases { closed[kind] = Int(clamping: counts[kind.rawValue]) }
        }
        withUnsafeBytes(of: &c.rejected) { raw in
            for (i, n) in raw.bindMemory(to: UInt64.self).enumerated() {
                rejected[Int(clive_reject_status(UInt32(i)))] = Int(clamping: n)
            }
        }
        self.closed = closed
        self.rejected = rejected
        fanoutHistogram = withUnsafeBytes(of: &c.fanout_hist) { raw in
            raw.bindMemory(to: UInt64.self).map { Int(clamping: $0) }
        }
        published = Int(clamping: c.published)
        deliveries = Int(clamping: c.deliveries)
        bytesOut = Int(clamping: c.bytes_out)
        coalesced = Int(clamping: c.coalesced)
        throttled = Int(clamping: c.throttled)
        fanouts = Int(clamping: c.fanouts)
        fanoutNanoseconds = Int(clamping: c.fanout_ns)
        compressions = Int(clamping: c.compressions)
        tlsHandshakes = Int(clamping: c.tls_handshakes)
        tlsFailures = Int(clamping: c.tls_failures)
    }
}

extension ServerCore {
    var stats: Stats {
        var c = clive_stats()
        clive_server_stats(handle, &c)
        return Stats(c)
    }
}
