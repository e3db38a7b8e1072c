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
        compressions = Int(clamping: c.compressions)
    }
}

extension ServerCore {
    var stats: Stats {
        var c = clive_stats()
        clive_server_stats(handle, &c)
        return Stats(c)
    }
}
