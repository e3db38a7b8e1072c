import CLive

/// Topic-based publish/subscribe over sessions. Topics are plain strings.
public protocol PubSub: Sendable {
    /// Subscribes a session; subscribing twice is a no-op.
    /// - Throws: `SessionError.invalidTopic` for an empty topic or one longer than
    ///   `Options.maxTopicLength`, `SessionError.tooManyTopics` past
    ///   `Options.maxTopicsPerSession` or `Options.maxTopics`, `SessionError.closed` after
    ///   the session closed.
    func subscribe(_ session: Session, to topic: String) throws
    /// Removes a subscription; a no-op when absent.
    func unsubscribe(_ session: Session, from topic: String) throws
    /// Sends a message to every session subscribed to the topic.
    /// - Throws: `SessionError.invalidTopic` for an invalid topic, `SessionError.closed`
    ///   once the server is shutting down or gone.
    func publish(_ message: Message, to topic: String) throws
}

/// The in-process implementation on the core's topic registry (`server.pubsub`).
///
/// A publish encodes the message once per codec that open sessions use, builds each frame
/// once, and shares it with every subscriber on every event loop: no per-subscriber
/// encoding, copying or allocation. A subscriber whose codec cannot carry the message (a
/// binary body for a JSON session) is skipped for it, counted and logged, and stays open.
///
/// Called on a session's own event loop (in `onMessage`), subscribe and unsubscribe take
/// effect before they return; from other threads they take effect shortly after, in order
/// with that thread's other calls. The topic limits (`Options.maxTopicsPerSession`,
/// `Options.maxTopics`) can only be checked where the session's topics live: off the
/// session's loop, a subscribe over them is dropped when the loop runs it, without an
/// error (counted in `Server.stats.refusedSubscribes`); check with `Session.inspect()`.
/// A topic's length is checked on every thread.
public struct InProcessPubSub: PubSub {
    let core: ServerCore?

    public func subscribe(_ session: Session, to topic: String) throws {
        var topic = topic
        try SessionError.check(topic.withUTF8 { clive_subscribe(session.handle, $0.baseAddress, $0.count) })
    }

    public func unsubscribe(_ session: Session, from topic: String) throws {
        var topic = topic
        try SessionError.check(topic.withUTF8 { clive_unsubscribe(session.handle, $0.baseAddress, $0.count) })
    }

    public func publish(_ message: Message, to topic: String) throws {
        guard let core else { throw SessionError.closed }
        try core.publish(message, to: topic)
    }
}
