import Live
import Synchronization

/// The conventions most apps write first, on top of `Live`: join and leave topics, publish
/// to a topic's subscribers, echo, and replies correlated by `ref`. `Live` itself gives
/// messages no meaning; this module does, and `live-server` serves it.
///
/// | message from a client | effect |
/// |---|---|
/// | `{"type":"join","topic":T,"ref":R}` | subscribe to T |
/// | `{"type":"leave","topic":T,"ref":R}` | unsubscribe from T |
/// | `{"type":"publish","topic":T,"body":B,"ref":R}` | every subscriber of T gets `{"type":"message","topic":T,"body":B}` |
/// | `{"type":"echo",...}` | the same message comes back |
/// | `{"type":"who","topic":T,"ref":R}` | `{"type":"reply","ref":R,"topic":T,"body":[ids]}`: at most `whoLimit` members (with `Options.presence`) |
/// | `{"type":"count","topic":T,"ref":R}` | `{"type":"reply","ref":R,"topic":T,"body":{"count":N}}`: how many members (with `Options.presence`) |
///
/// With a non-empty `ref`, the sender gets `{"type":"reply","ref":R,"topic":T}` once the
/// action took effect, or `{"type":"error","ref":R,"body":{"reason":"..."}}` when it did
/// not. The conventions are the same under every codec.
public final class Rooms: Sendable {
    /// What a session asks to do with a topic.
    public enum Action: Sendable, Hashable {
        case join
        case publish
    }

    /// Decides whether a session may join or publish to a topic (using its `Meta`).
    public typealias Authorize = @Sendable (Session, Action, String) -> Bool

    private let authorize: Authorize?
    /// The most members a `who` reply lists; `count` gives the true size.
    public let whoLimit: Int
    private let server = Locked<Served?>(nil)

    /// What `handle` needs of the server, set once it exists. Not the server itself (its
    /// pubsub and presence come from each session): the server's onMessage holds this
    /// object, and holding the server back would be a cycle that never frees either.
    private struct Served {
        let maxTopicLength: Int
    }

    /// `whoLimit` bounds a `who` reply (default 32): without it, one short request on a
    /// topic of thousands would answer tens of kilobytes, a cheap amplifier. 32 entries
    /// with 32-byte names are about 1.8 kB, some 40 times a `who` request: under the 64x
    /// that a request may cost in answers (100 entries answered 94x, measured).
    public init(authorize: Authorize? = nil, whoLimit: Int = 32) {
        self.authorize = authorize
        self.whoLimit = max(0, whoLimit)
    }

    /// Makes a server whose sessions speak these conventions. Messages of other types go to
    /// `options.onMessage`, if set; without it they are answered with an error.
    public func makeServer(options: Options) throws -> Server {
        var options = options
        let fallback = options.onMessage
        options.onMessage = { [self] session, message in
            handle(message, from: session, fallback: fallback)
        }
        let server = try Server(options: options)
        self.server.withLock {
            $0 = Served(maxTopicLength: options.maxTopicLength)
        }
        return server
    }

    func handle(_ message: Message, from session: Session,
                fallback: (@Sendable (Session, Message) -> Void)?) {
        guard let served = server.withLock({ $0 }) else { return }
        let (pubsub, presence) = (session.pubsub, session.presence)
        let topic = message.topic
        var replyBody = Bytes()
        do {
            switch message.type {
            case "join":
                try requireTopic(topic, served)
                try check(session, .join, topic)
                try pubsub.subscribe(session, to: topic)
            case "leave":
                try requireTopic(topic, served)
                try pubsub.unsubscribe(session, from: topic)
            case "publish":
                try requireTopic(topic, served)
                try check(session, .publish, topic)
                try pubsub.publish(Message(type: "message", topic: topic, body: message.body, bodyEncoding: message.bodyEncoding), to: topic)
            case "echo":
                try session.send(message)
                return
            case "who", "count":
                try requireTopic(topic, served)
                if presence.spansNodes {
                    // other nodes' members are in Redis: ask off the event loop, reply from there
                    let (whoLimit, isWho) = (whoLimit, message.type == "who")
                    Task {
                        let body = isWho ? await presence.whoJSONEverywhere(topic, limit: whoLimit)
                            : Bytes(#"{"count":\#(await presence.countEverywhere(topic))}"#)
                        guard !message.ref.isEmpty else { return }
                        try? session.send(Message(type: "reply", topic: topic, ref: message.ref, body: body, bodyEncoding: .json))
                    }
                    return
                }
                replyBody = message.type == "who" ? presence.whoJSON(topic, limit: whoLimit)
                    : Bytes(#"{"count":\#(presence.count(topic))}"#)
            default:
                if let fallback {
                    fallback(session, message)
                    return
                }
                throw Refusal("unknown type")
            }
            if !message.ref.isEmpty {
                try session.send(Message(type: "reply", topic: topic, ref: message.ref, body: replyBody, bodyEncoding: .json))
            }
        } catch let refusal as Refusal {
            replyError(refusal.reason, to: message, from: session)
        } catch SessionError.invalidTopic {
            replyError("invalid topic", to: message, from: session)
        } catch SessionError.tooManyTopics {
            replyError("too many topics", to: message, from: session)
        } catch {
            // The session is closing (or its queue overflowed): nothing more to say to it.
        }
    }

    private func requireTopic(_ topic: String, _ served: Served) throws {
        if topic.isEmpty { throw Refusal("missing topic") }
        if topic.utf8.count > served.maxTopicLength { throw Refusal("topic too long") }
    }

    private func check(_ session: Session, _ action: Action, _ topic: String) throws {
        if let authorize, !authorize(session, action, topic) { throw Refusal("not allowed") }
    }

    private func replyError(_ reason: String, to message: Message, from session: Session) {
        guard !message.ref.isEmpty else { return }
        // reasons are this file's own plain ASCII phrases: no escaping needed
        let body = Bytes(#"{"reason":"\#(reason)"}"#)
        try? session.send(Message(type: "error", ref: message.ref, body: body, bodyEncoding: .json))
    }
}

private struct Refusal: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
