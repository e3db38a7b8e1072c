import CLive

/// An option out of its range, found when a `Server` is created (its initialiser throws
/// it): `field` names the option as `Options` spells it, `description` says its range and
/// the value given, e.g. "queueSize must be 1...16777216, got 0".
public struct OptionsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The option, e.g. `"queueSize"` or `"rateLimit.burst"`.
    public let field: String
    public let description: String

    init(field: String, _ description: String) {
        self.field = field
        self.description = description
    }
}

extension Options {
    /// Checks every option: the ranges that only Swift knows (what 0 or a negative value
    /// would mean to the core, durations, `maxRefLength`) here, then the core's own ranges
    /// with `clive_options_check`, its message reworded with this type's field names.
    func validate() throws {
        try checkSwiftRanges()
        var message = [CChar](repeating: 0, count: 256)
        let rc = withCOptions { c in clive_options_check(&c, &message, message.count) }
        if rc != CLIVE_OK.rawValue {
            throw translate(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        try checkCTypes()
    }

    /// The lower bounds: the core reads 0 as "the default", so Swift refuses it (and
    /// negative values) itself rather than let them change meaning silently.
    private func checkSwiftRanges() throws {
        try atLeast(1, queueSize, "queueSize")
        try atLeast(1, queueBytes, "queueBytes")
        try atLeast(1, maxMessageSize, "maxMessageSize")
        try atLeast(1, maxFragments, "maxFragments")
        try atLeast(1, maxRequestHeadSize, "maxRequestHeadSize")
        if let maxSessions { try atLeast(1, maxSessions, "maxSessions") }
        if let eventLoops, !(1...1024).contains(eventLoops) {
            throw OptionsError(field: "eventLoops", "eventLoops must be 1...1024 (or nil: one per CPU), got \(eventLoops)")
        }
        try positive(handshakeTimeout, "handshakeTimeout")
        try positive(pingInterval, "pingInterval")
        try positive(idleTimeout, "idleTimeout")
        try positive(closeTimeout, "closeTimeout")
        if let rateLimit {
            try atLeast(1, rateLimit.messagesPerSecond, "rateLimit.messagesPerSecond")
            try atLeast(1, rateLimit.burst, "rateLimit.burst")
            try positive(rateLimit.grace, "rateLimit.grace")
        }
        if let presence {
            if presence.batchInterval < .zero {
                throw OptionsError(field: "presence.batchInterval",
                                   "presence.batchInterval must be zero or more, got \(presence.batchInterval)")
            }
        }
        for (i, policy) in topicPolicies.enumerated() {
            if let throttle = policy.throttle { try positive(throttle, "topicPolicies[\(i)].throttle") }
        }
        try atLeast(1, maxTopicsPerSession, "maxTopicsPerSession")
        try atLeast(1, maxTopics, "maxTopics")
        try atLeast(1, maxTopicLength, "maxTopicLength")
        try atLeast(1, maxRefLength, "maxRefLength")
        try atLeast(1, maxQueuedBytesTotal, "maxQueuedBytesTotal")
        if let maxSessionsPerIP { try atLeast(1, maxSessionsPerIP, "maxSessionsPerIP") }
        if let compression {
            // 0 means "the default" to the core; here it is an error like any other
            try atLeast(1, compression.minSize, "compression.minSize")
            try atLeast(1, compression.level, "compression.level")
            if let bits = compression.clientContextWindowBits { try atLeast(1, bits, "compression.clientContextWindowBits") }
        }
    }

    /// The upper bounds of the core's 32-bit fields, for a core whose own range goes that
    /// far (a larger value reaches it clamped, so its check cannot see it).
    private func checkCTypes() throws {
        let fields: [(String, Int?)] = [
            ("queueSize", queueSize), ("maxFragments", maxFragments), ("maxSessions", maxSessions),
            ("rateLimit.messagesPerSecond", rateLimit?.messagesPerSecond), ("rateLimit.burst", rateLimit?.burst),
            ("maxTopicsPerSession", maxTopicsPerSession), ("maxTopics", maxTopics),
            ("maxSessionsPerIP", maxSessionsPerIP),
        ]
        for case let (name, value?) in fields where value > Int(UInt32.max) {
            throw OptionsError(field: name, "\(name) must be at most \(UInt32.max), got \(value)")
        }
    }

    /// The core's message ("queue_size must be 1...16777216, got 0") in `Options` terms.
    private func translate(_ message: String) -> OptionsError {
        let name = message.prefix { $0 != " " && $0 != ":" }
        guard let (field, value) = swiftField(forCField: String(name)) else {
            return OptionsError(field: "options", message)
        }
        var text = field + message.dropFirst(name.count)
        if let got = text.range(of: ", got ", options: .backwards) {
            // the core counts time in milliseconds; the value given was a Duration
            let unit = name.hasSuffix("_ms") ? " ms" : ""
            text = String(text[..<got.lowerBound]) + unit + ", got " + value
        }
        return OptionsError(field: field, text)
    }

    /// The `Options` field a core field comes from, and its value as given.
    private func swiftField(forCField name: String) -> (String, String)? {
        func show(_ v: Any?) -> String { v.map { "\($0)" } ?? "nil" }
        switch name {
        case "loops": return ("eventLoops", show(eventLoops))
        case "queue_size": return ("queueSize", show(queueSize))
        case "queue_bytes": return ("queueBytes", show(queueBytes))
        case "max_message": return ("maxMessageSize", show(maxMessageSize))
        case "max_fragments": return ("maxFragments", show(maxFragments))
        case "max_request_head": return ("maxRequestHeadSize", show(maxRequestHeadSize))
        case "max_sessions": return ("maxSessions", show(maxSessions))
        case "handshake_timeout_ms": return ("handshakeTimeout", show(handshakeTimeout))
        case "ping_interval_ms": return ("pingInterval", show(pingInterval))
        case "idle_timeout_ms": return ("idleTimeout", show(idleTimeout))
        case "close_timeout_ms": return ("closeTimeout", show(closeTimeout))
        case "subprotocols", "subprotocol_count": return ("codecs", "\(codecTable.count) codecs")
        case "allowed_origins", "allowed_origin_count": return ("allowedOrigins", "\(allowedOrigins.count) origins")
        case "presence_interval_ms": return ("presence.batchInterval", show(presence?.batchInterval))
        case "topic_policies", "topic_policy_count": return ("topicPolicies", "\(topicPolicies.count) policies")
        case "rate_limit": return ("rateLimit.messagesPerSecond", show(rateLimit?.messagesPerSecond))
        case "rate_burst": return ("rateLimit.burst", show(rateLimit?.burst))
        case "rate_grace_ms": return ("rateLimit.grace", show(rateLimit?.grace))
        case "max_topics_per_session": return ("maxTopicsPerSession", show(maxTopicsPerSession))
        case "max_topics": return ("maxTopics", show(maxTopics))
        case "max_topic_len": return ("maxTopicLength", show(maxTopicLength))
        case "max_queued_total": return ("maxQueuedBytesTotal", show(maxQueuedBytesTotal))
        case "max_sessions_per_ip": return ("maxSessionsPerIP", show(maxSessionsPerIP))
        case "deflate_level": return ("compression.level", show(compression?.level))
        case "deflate_min_size": return ("compression.minSize", show(compression?.minSize))
        case "deflate_client_window_bits":
            return ("compression.clientContextWindowBits", show(compression?.clientContextWindowBits))
        default: return nil
        }
    }
}

private func atLeast(_ low: Int, _ value: Int, _ name: String) throws {
    if value < low { throw OptionsError(field: name, "\(name) must be at least \(low), got \(value)") }
}

/// (The upper bounds of durations are the core's: a longer one reaches it clamped to
/// `UInt32.max` milliseconds, which it refuses.)
private func positive(_ d: Duration, _ name: String) throws {
    if d <= .zero { throw OptionsError(field: name, "\(name) must be more than zero, got \(d)") }
}
