import CLive
import Synchronization

/// How presence behaves (`Options.presence`; `nil` turns it off).
///
/// With presence on, the server keeps a cross-loop index of who is subscribed to each
/// topic (`server.presence`), and publishes join and leave events to a topic's
/// subscribers: `{"type":"presence","topic":T,"body":{"joined":[...],"left":[...]}}`.
/// Joins and leaves are batched (`batchInterval`), so a burst of joins becomes a few
/// events listing many sessions rather than one event per join per subscriber.
///
/// What a join costs: every member of the topic receives one entry for it, an id and at
/// most `maxPublicFieldBytes` of the public field (about 100 bytes of JSON with the
/// default, more only if the value needs escaping), so a join into a topic of M members
/// sends what a publish of that size to the topic sends; a leave sends an id to each
/// member. A client cannot make an entry bigger, and
/// an event is never more than `maxEventEntries` entries. Joins and leaves are messages
/// the client sends, so `Options.rateLimit` bounds how many of them (and so how many
/// entries) one session can cause each second.
public struct PresenceOptions: Sendable {
    /// Publish join/leave events (the index for `who` is kept either way).
    ///
    /// Events cost bytes in proportion to members times joiners: when N sessions join one
    /// topic at once, each member hears of every later joiner, about N²/2 entries in all
    /// (batching makes that few frames, not fewer bytes). For rooms of thousands, limit
    /// events to the topics that need them (`topicPrefixes`) and answer "who is here"
    /// with `who` and `count`.
    public var events = true
    /// Publish events only for topics with one of these prefixes; empty: every topic.
    public var topicPrefixes: [String] = []
    /// A `Meta` key whose value is shown with each joined id (e.g. a display name), as
    /// `{"id": "12", "<key>": "ada"}`. `nil`: ids only. Never the whole `Meta`.
    public var publicField: String? = nil
    /// The most UTF-8 bytes of the public field's value shown in an entry (in events and
    /// in `whoJSON`). A longer value is cut at the last Unicode scalar boundary at or
    /// before that many bytes, so the result is valid UTF-8 of at most this many bytes (a
    /// base letter followed by a thousand combining accents is one `Character`, and is cut
    /// like any other text). Default 64: a display name, never a payload.
    public var maxPublicFieldBytes = 64
    /// The most entries (`joined` and `left` together) in one event; a batch with more is
    /// sent as several events. Default 100: a frame of about 10 kB for names of a few
    /// dozen bytes, so a subscriber's queue never takes one huge frame for a join storm.
    public var maxEventEntries = 100
    /// How long joins and leaves are collected before an event goes out; zero: one event
    /// per topic per event-loop turn.
    public var batchInterval: Duration = .milliseconds(50)

    public init() {}
}

/// Who is subscribed to what, across every event loop (`server.presence`).
public struct Presence: Sendable {
    let core: ServerCore?

    /// The ids of the sessions subscribed to a topic, at most `limit` of them (empty when
    /// presence is off). Only those are copied, so a capped `who` on a huge topic is cheap;
    /// `count` gives the true size.
    public func who(_ topic: String, limit: Int = .max) -> [Session.ID] {
        ids(topic, limit: limit).map { core?.publicID($0) ?? String($0) }
    }

    /// How many sessions are subscribed to a topic, without building the list.
    public func count(_ topic: String) -> Int {
        guard let core else { return 0 }
        var topic = topic
        return topic.withUTF8 { Int(clive_presence_list(core.handle, $0.baseAddress, $0.count, nil, 0)) }
    }

    /// `who` as the JSON array the presence events use: ids, or objects with the public
    /// field (cut to `maxPublicFieldBytes`) when one is configured; at most `limit` entries.
    public func whoJSON(_ topic: String, limit: Int = .max) -> Bytes {
        guard let core else { return "[]" }
        return Bytes(core.presenceJSON(ids(topic, limit: limit)[...], withPublicField: true))
    }

    /// `whoJSON` across every node sharing topics through `Options.broker`, when the broker
    /// keeps presence (`RedisBroker`): asks it, and falls back to this node's members when
    /// it cannot answer (Redis away). Without such a broker, the same as `whoJSON`.
    public func whoJSONEverywhere(_ topic: String, limit: Int = .max) async -> Bytes {
        if let broker = core?.options.broker, let entries = await broker.members(of: topic, limit: limit) {
            return Bytes("[" + entries.joined(separator: ",") + "]")
        }
        return whoJSON(topic, limit: limit)
    }

    /// `count` across every node, as `whoJSONEverywhere` does for `who`.
    public func countEverywhere(_ topic: String) async -> Int {
        if let broker = core?.options.broker, let n = await broker.memberCount(of: topic) { return n }
        return count(topic)
    }

    /// Whether `whoJSONEverywhere` and `countEverywhere` may ask other nodes (a broker is
    /// set), so that a caller on an event loop knows to await them in a task.
    public var spansNodes: Bool { core?.options.broker != nil }

    func localIDs(_ topic: String) -> [UInt64] { ids(topic, limit: .max) }

    private func ids(_ topic: String, limit: Int) -> [UInt64] {
        guard let core, limit > 0 else { return [] }
        var topic = topic
        return topic.withUTF8 { t in
            var ids = [UInt64](repeating: 0, count: min(limit, 64))
            while true {
                let total = Int(clive_presence_list(core.handle, t.baseAddress, t.count, &ids, ids.count))
                if total <= ids.count || ids.count == limit { return Array(ids.prefix(min(total, ids.count))) }
                // more than fit: grow towards the limit (with room for joins meanwhile) and retry
                ids = [UInt64](repeating: 0, count: min(limit, total + total / 4))
            }
        }
    }
}

// MARK: presence events (the core's on_presence callback)

extension ServerCore {
    /// A JSON array of ids, or of `{"id":..,"<field>":..}` objects when there is a public
    /// field (and `withPublicField`), each value cut to `maxPublicFieldBytes`.
    func presenceJSON(_ ids: ArraySlice<UInt64>, withPublicField: Bool) -> [UInt8] {
        let field = withPublicField ? options.presence?.publicField : nil
        let maxValueBytes = max(0, options.presence?.maxPublicFieldBytes ?? 0)
        // leave events list ids only, so a session gone from `sessions` needs no value
        let values = field.map { field in
            sessions.withLock { v in
                Dictionary(ids.compactMap { id in v[id]?.meta[field].map { (id, $0.description) } },
                           uniquingKeysWith: { first, _ in first })
            }
        } ?? [:]
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, id) in ids.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            if let field {
                out.append(contentsOf: #"{"id":"#.utf8)
                JSONCodec.appendQuoted(publicID(id), to: &out)
                out.append(UInt8(ascii: ","))
                JSONCodec.appendQuoted(field, to: &out)
                out.append(UInt8(ascii: ":"))
                JSONCodec.appendQuoted(prefix(values[id] ?? "", utf8Bytes: maxValueBytes), to: &out)
                out.append(UInt8(ascii: "}"))
            } else {
                JSONCodec.appendQuoted(publicID(id), to: &out)
            }
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// Each id with its presence entry (the JSON object or string events list), for a broker.
    func presenceEntries(_ ids: [UInt64]) -> [(id: String, entry: String)] {
        ids.map { id in
            let array = presenceJSON([id][...], withPublicField: true)  // "[entry]"
            return (publicID(id), String(decoding: array.dropFirst().dropLast(), as: UTF8.self))
        }
    }

    /// Publishes one batch of joins and leaves as presence events of at most
    /// `maxEventEntries` entries each. Loop thread.
    func presenceChanged(topic: String, joined: [UInt64], left: [UInt64]) {
        options.broker?.presenceChanged(topic: topic, joined: presenceEntries(joined), left: left.map(publicID))
        guard let presence = options.presence, presence.events else { return }
        if !presence.topicPrefixes.isEmpty && !presence.topicPrefixes.contains(where: { topic.hasPrefix($0) }) {
            return
        }
        let perEvent = max(1, presence.maxEventEntries)
        var joined = joined[...], left = left[...]
        while !joined.isEmpty || !left.isEmpty {
            let j = joined.prefix(perEvent)
            let l = left.prefix(perEvent - j.count)
            joined = joined.dropFirst(j.count)
            left = left.dropFirst(l.count)
            var body: [UInt8] = [UInt8(ascii: "{")]
            if !j.isEmpty {
                body.append(contentsOf: #""joined":"#.utf8)
                body.append(contentsOf: presenceJSON(j, withPublicField: true))
            }
            if !l.isEmpty {
                if !j.isEmpty { body.append(UInt8(ascii: ",")) }
                body.append(contentsOf: #""left":"#.utf8)
                body.append(contentsOf: presenceJSON(l, withPublicField: false))
            }
            body.append(UInt8(ascii: "}"))
            try? publish(Message(type: "presence", topic: topic, body: Bytes(body), bodyEncoding: .json), to: topic)
        }
    }
}

/// The longest prefix of `s` of at most `maxBytes` UTF-8 bytes that ends on a Unicode
/// scalar boundary (not a `Character` one: one character may be any number of bytes).
func prefix(_ s: String, utf8Bytes maxBytes: Int) -> String {
    let utf8 = s.utf8
    guard utf8.count > maxBytes else { return s }
    var end = utf8.index(utf8.startIndex, offsetBy: maxBytes)
    while end > utf8.startIndex && UTF8.isContinuation(utf8[end]) { utf8.formIndex(before: &end) }
    return String(s.unicodeScalars[..<end])
}
