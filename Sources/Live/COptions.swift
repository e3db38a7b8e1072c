import CLive
import Foundation

extension Options {
    /// The core's options for these, valid only during `body` (the strings they point to
    /// are freed after it; the core copies them). The callbacks are left to the caller.
    func withCOptions<R>(_ body: (inout clive_options) throws -> R) rethrows -> R {
        var c = clive_options()
        c.loops = UInt32(clamping: eventLoops ?? 0)
        c.queue_size = UInt32(clamping: queueSize)
        c.queue_bytes = queueBytes
        c.max_message = maxMessageSize
        c.max_fragments = UInt32(clamping: maxFragments)
        c.max_request_head = maxRequestHeadSize
        c.max_sessions = UInt32(clamping: maxSessions ?? 0)
        c.handshake_timeout_ms = milliseconds(handshakeTimeout)
        c.ping_interval_ms = milliseconds(pingInterval)
        c.idle_timeout_ms = milliseconds(idleTimeout)
        c.close_timeout_ms = milliseconds(closeTimeout)
        if let limit = rateLimit {
            c.rate_limit = UInt32(clamping: limit.messagesPerSecond)
            c.rate_burst = UInt32(clamping: limit.burst)
            c.rate_grace_ms = milliseconds(limit.grace)
        }
        if let presence {
            c.presence = 1
            c.presence_interval_ms = presence.batchInterval == .zero ? 0 : milliseconds(presence.batchInterval)
        }
        c.max_topics_per_session = UInt32(clamping: maxTopicsPerSession)
        c.max_topics = UInt32(clamping: maxTopics)
        c.max_topic_len = maxTopicLength
        c.max_queued_total = maxQueuedBytesTotal
        c.max_sessions_per_ip = UInt32(clamping: maxSessionsPerIP ?? 0)
        c.share_port = sharePort ? 1 : 0
        if let compression {
            c.deflate = 1
            c.deflate_min_size = compression.minSize
            c.deflate_level = Int32(clamping: compression.level)
            c.deflate_client_window_bits = UInt32(clamping: compression.clientContextWindowBits ?? 0)
        }
        let protocols = codecTable.map { strdup($0.name) }
        let origins = allowedOrigins.map { strdup($0) }
        let prefixes = topicPolicies.map { strdup($0.prefix) }
        defer { (protocols + origins + prefixes).forEach { free($0) } }
        let policies = zip(topicPolicies, prefixes).map { policy, prefix in
            clive_topic_policy(
                prefix: prefix, throttle_ms: policy.throttle.map { milliseconds($0) } ?? 0,
                latest_only: policy.latestValueWins ? 1 : 0)
        }
        return try protocols.map { UnsafePointer($0) }.withUnsafeBufferPointer { p in
            try origins.map { UnsafePointer($0) }.withUnsafeBufferPointer { o in
                c.subprotocols = p.baseAddress
                c.subprotocol_count = p.count
                c.allowed_origins = o.baseAddress
                c.allowed_origin_count = o.count
                return try policies.withUnsafeBufferPointer { t in
                    c.topic_policies = t.baseAddress
                    c.topic_policy_count = t.count
                    return try body(&c)
                }
            }
        }
    }
}

/// A duration in whole milliseconds for the core: rounded up to 1 (a positive duration
/// shorter than that must not turn into 0, which the core reads as "the default") and
/// clamped to what a `UInt32` holds (`Options` validation refuses more).
func milliseconds(_ d: Duration) -> UInt32 {
    let (s, atto) = d.components
    guard s >= 0, atto >= 0 else { return 1 }
    let (ms, overflow) = s.multipliedReportingOverflow(by: 1000)
    if overflow { return UInt32.max }
    return UInt32(clamping: max(1, ms + (atto + 999_999_999_999_999) / 1_000_000_000_000_000))
}
