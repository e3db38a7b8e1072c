import CLive
import Synchronization

/// How presence behaves (`Options.presence`; `nil` turns it off).
///
/// With presence on, the server keeps a cross-loop index of who is subscribed to each
/// topic (`server.presence`), and publishes join and leave events to a topic's
/// subscribers: `{"type":"presence","topic":T,"body":{"joined":[...],"left":[...]}}`.
/// Joins and leaves are batched (`batchInterval`), so a burst of joins becomes a few
/// events listing many sessions rather than one event per join per subscriber.
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
    /// How long joins and leaves are collected before an event goes out; zero: one event
    /// per topic per event-loop turn.
    public var batchInterval: Duration = .milliseconds(50)

    public init() {}
}

/// Who is subscribed to what, across every event loop (`server.presence`).
public struct Presence: Sendable {
    let core: ServerCore?

    /// The ids of the sessions subscribed to a topic (empty when presence is off).
    public func who(_ topic: String) -> [Session.ID] {
        ids(topic).map { String($0) }
    }

    /// How many sessions are subscribed to a topic, without building the list.
    public func count(_ topic: String) -> Int {
        guard let core else { return 0 }
        var topic = topic
        return topic.withUTF8 { Int(clive_presence_list(core.handle, $0.baseAddress, $0.count, nil, 0)) }
    }

    /// `who` as the JSON array the presence events use: ids, or objects with the public
    /// field when one is configured.
    public func whoJSON(_ topic: String) -> Bytes {
        guard let core else { return "[]" }
        return Bytes(core.presenceJSON(ids(topic), withPublicField: true))
    }

    private func ids(_ topic: String) -> [UInt64] {
        guard let core else { return [] }
        var topic = topic
        return topic.withUTF8 { t in
            var ids = [UInt64](repeating: 0, count: 64)
            while true {
                let total = Int(clive_presence_list(core.handle, t.baseAddress, t.count, &ids, ids.count))
                if total <= ids.count { return Array(ids.prefix(total)) }
                ids = [UInt64](repeating: 0, count: total + total / 4)  // grew meanwhile: retry
            }
        }
    }
}
