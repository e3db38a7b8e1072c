// Every option is range-checked when a Server is created, and the error names the field.

import Live
import Testing

/// One invalid setting and the field the error must name.
struct InvalidOption: Sendable, CustomStringConvertible {
    let field: String
    let change: @Sendable (inout Options) -> Void
    let value: String

    init(_ field: String, _ value: String, _ change: @escaping @Sendable (inout Options) -> Void) {
        self.field = field
        self.value = value
        self.change = change
    }

    var description: String { "\(field) = \(value)" }
}

private let invalidOptions: [InvalidOption] = [
    .init("queueSize", "0") { $0.queueSize = 0 },
    .init("queueSize", "-1") { $0.queueSize = -1 },
    .init("queueSize", "1099511627776") { $0.queueSize = 1 << 40 },
    .init("queueBytes", "0") { $0.queueBytes = 0 },
    .init("maxMessageSize", "0") { $0.maxMessageSize = 0 },
    .init("maxFragments", "0") { $0.maxFragments = 0 },
    .init("maxRequestHeadSize", "0") { $0.maxRequestHeadSize = 0 },
    .init("maxSessions", "0") { $0.maxSessions = 0 },
    .init("eventLoops", "0") { $0.eventLoops = 0 },
    .init("eventLoops", "1025") { $0.eventLoops = 1025 },
    .init("handshakeTimeout", "0 seconds") { $0.handshakeTimeout = .zero },
    .init("pingInterval", "-1.0 seconds") { $0.pingInterval = .seconds(-1) },
    .init("idleTimeout", "0 seconds") { $0.idleTimeout = .zero },
    .init("closeTimeout", "100 days") { $0.closeTimeout = .seconds(100 * 86_400) },
    .init("rateLimit.messagesPerSecond", "0") { $0.rateLimit = .init(messagesPerSecond: 0, burst: 5) },
    .init("rateLimit.burst", "0") { $0.rateLimit = .init(messagesPerSecond: 5, burst: 0) },
    .init("rateLimit.grace", "0 seconds") { $0.rateLimit = .init(messagesPerSecond: 5, grace: .zero) },
    .init("presence.batchInterval", "-1 ms") { o in
        var p = PresenceOptions()
        p.batchInterval = .milliseconds(-1)
        o.presence = p
    },
    .init("topicPolicies[1].throttle", "0") { $0.topicPolicies = [.init(prefix: "a"), .init(prefix: "b", throttle: .zero)] },
    .init("maxTopicsPerSession", "0") { $0.maxTopicsPerSession = 0 },
    .init("maxTopics", "0") { $0.maxTopics = 0 },
    .init("maxTopicLength", "0") { $0.maxTopicLength = 0 },
    .init("maxTopicLength", "65536") { $0.maxTopicLength = 65_536 },
    .init("maxRefLength", "0") { $0.maxRefLength = 0 },
    .init("maxQueuedBytesTotal", "0") { $0.maxQueuedBytesTotal = 0 },
    .init("maxSessionsPerIP", "0") { $0.maxSessionsPerIP = 0 },
    .init("compression.level", "0") { $0.compression = .init(level: 0) },
    .init("compression.level", "10") { $0.compression = .init(level: 10) },
    .init("compression.minSize", "0") { $0.compression = .init(minSize: 0) },
    .init("compression.clientContextWindowBits", "8") { $0.compression = .init(clientContextWindowBits: 8) },
    .init("compression.clientContextWindowBits", "16") { $0.compression = .init(clientContextWindowBits: 16) },
]

@Suite struct OptionsValidationTests {
    @Test(arguments: invalidOptions)
    func invalidValueNamesItsField(_ invalid: InvalidOption) throws {
        var options = Options()
        invalid.change(&options)
        let error = try #require(throws: OptionsError.self) { try Server(options: options) }
        #expect(error.field == invalid.field)
        #expect(error.description.hasPrefix(invalid.field + " must be"), "\(error)")
    }

    /// A range the core checks is reported in `Options` terms, with the value as given.
    @Test func coreRangeIsReworded() throws {
        var options = Options()
        options.maxTopicLength = 70_000
        let error = try #require(throws: OptionsError.self) { try Server(options: options) }
        #expect(error.field == "maxTopicLength")
        #expect(error.description.contains("65535"), "\(error)")
        #expect(error.description.hasSuffix("got 70000"), "\(error)")
        #expect(!error.description.contains("max_topic_len"), "\(error)")
    }

    /// The extremes of each range are accepted (and the defaults, which every other test
    /// uses).
    @Test func boundaryValuesAreAccepted() throws {
        var options = Options()
        options.eventLoops = 1
        options.maxTopicLength = 65_535
        options.maxRefLength = 1
        options.maxTopicsPerSession = 1
        options.maxTopics = 1
        options.maxSessionsPerIP = 1
        options.maxSessions = 1
        options.handshakeTimeout = .microseconds(1)
        options.rateLimit = .init(messagesPerSecond: 1, burst: 1, grace: .milliseconds(1))
        var presence = PresenceOptions()
        presence.batchInterval = .zero
        options.presence = presence
        let server = try Server(options: options)
        server.shutdown()
    }
}
