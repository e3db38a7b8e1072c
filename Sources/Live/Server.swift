import CLive
import ServiceLifecycle

/// A WebSocket pub/sub server.
///
/// ```swift
/// var options = Options()
/// options.onAuth = { request in
///     guard let user = request.queryValue("user") else { throw Rejection(status: .unauthorized) }
///     return ["user": .string(user)]
/// }
/// options.onMessage = { session, message in try? session.send(message) }
/// let server = try Server(options: options)
/// try server.listen(host: "127.0.0.1", port: 8080)
/// try await server.run()
/// ```
///
/// `run()` makes it a swift-service-lifecycle `Service`: a graceful shutdown stops
/// accepting, closes every session with 1001 and returns once they are gone (bounded by
/// `Options.closeTimeout`). Without async code, use `start()` and `shutdown()`.
public final class Server: Service, Sendable {
    let core: ServerCore

    /// Topic publish/subscribe across all of this server's sessions and event loops.
    public var pubsub: InProcessPubSub { InProcessPubSub(core: core) }

    /// Who is subscribed to each topic, across every event loop (needs `Options.presence`).
    public var presence: Presence { Presence(core: core) }

    /// Creates a server (not yet listening).
    /// - Throws: `OptionsError` naming the first option out of its range, or
    ///   `ServerError` when the core cannot be set up (threads, memory).
    public init(options: Options = Options()) throws {
        core = try ServerCore(options: options)
    }

    deinit { core.shutdown() }

    /// Binds the address; port 0 picks a free port (read it from `port` afterwards).
    /// - Throws: `ServerError` saying what failed, e.g. "address 127.0.0.1:8080 already
    ///   in use" (another process holds the port, unless both set `Options.sharePort`), or
    ///   that the port is outside 0...65535.
    public func listen(host: String = "127.0.0.1", port: Int) throws {
        try core.listen(host: host, port: port)
    }

    /// Binds a TLS listener (wss://, https://) with `certificate`. A server may have one
    /// plain and one TLS listener, e.g. 8080 for health checks and 8443 for browsers.
    /// - Throws: `ServerError` as for `listen(host:port:)`, or when the server already has
    ///   a TLS listener.
    public func listen(host: String = "127.0.0.1", port: Int, tls certificate: TLSCertificate) throws {
        try core.listen(host: host, port: port, tls: certificate)
    }

    /// The first listener's bound port, or 0 before `listen`.
    public var port: Int { core.port }

    /// The TLS listener's bound port, or 0 without one.
    public var tlsPort: Int { core.tlsPort }

    /// Starts the event loops and returns.
    public func start() throws { try core.start() }

    /// Begins a graceful shutdown and returns at once; idempotent.
    public func shutdown() { core.shutdown() }

    /// Starts (unless started) and returns after the server has shut down, which a graceful
    /// shutdown of the service group, task cancellation or `shutdown()` begins.
    public func run() async throws {
        if core.isStopped { return }
        do {
            try core.start()
        } catch let e as ServerError
            where e.code == Int(CLIVE_ESTATE.rawValue) || e.code == Int(CLIVE_ECLOSED.rawValue)
        {
            // already started (run after start), or shut down before it ran
        }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await core.waitUntilStopped()
            } onCancel: {
                core.shutdown()
            }
        } onGracefulShutdown: {
            self.core.shutdown()
        }
    }

    /// The open session with this id, if any: sessions are registered when they are
    /// accepted and removed just before `onClose`, so that an app can act on one it only
    /// knows the id of (an admin closing an abusive client, a presence list's entry).
    public func session(id: Session.ID) -> Session? {
        guard let key = core.localID(id) else { return nil }
        return core.sessions.withLock { $0[key] }
    }

    /// The core's counters, summed over event loops: a snapshot, read without waiting.
    public var stats: Stats { core.stats }

    /// Reports the core's counters through swift-metrics now, besides every
    /// `Options.metricsInterval`: e.g. just before a scrape, so that it sees fresh figures.
    public func reportMetrics() { core.reportMetrics() }

    /// Sends a message to every open session, encoded once per codec in use and shared,
    /// as `pubsub.publish` does for a topic's subscribers (a session whose codec cannot
    /// carry the message is skipped for it, counted in `skippedEncodes`).
    /// - Throws: `SessionError.closed` once the server is shutting down.
    public func broadcast(_ message: Message) throws {
        try core.broadcast(message)
    }

    /// Publishes through a codec error for subscribers whose codec could not encode a
    /// message: how many (codec, publish) pairs were skipped so far.
    public var skippedEncodes: Int { core.skippedEncodes.load(ordering: .relaxed) }
}
