import CLive
import Foundation
import Live

/// A client of a Live server that speaks live-server's conventions (`LiveRooms`): join,
/// leave, publish, who, count, over either codec, on the C core's client side.
///
/// ```swift
/// let client = try await LiveClient.connect(to: URL(string: "wss://example.com/ws?token=t")!)
/// try await client.join("room:lobby")
/// try await client.publish(#"{"text":"hi"}"#, to: "room:lobby")
/// for await message in client.messages(for: "room:lobby") { print(message.body.string) }
/// ```
///
/// Requests await the server's `reply` for their `ref`, or throw its `error`
/// (`ClientError.server`), or `ClientError.timedOut` after `ClientOptions.requestTimeout`.
/// When an open connection ends, the client reconnects with exponential backoff and
/// jitter and joins every joined topic again, as live.js does; `states` tells how it goes.
/// Requests made while it is between connections throw `ClientError.notConnected`; one in
/// flight when the connection ends throws why it ended (`isConnectionLoss` tells these apart).
/// A server that drops a message (live-server's rate limit) never answers it: the request
/// then throws `ClientError.timedOut`. Dropping the last reference to a client closes it.
public final class LiveClient: Sendable {
    let core: ClientCore

    private init(core: ClientCore) { self.core = core }

    /// Connects and returns once the server accepted the session.
    /// - Parameters:
    ///   - url: `ws://host[:port]/path[?query]` or `wss://...` (TLS; the server's
    ///     certificate is verified, see `ClientOptions`); authentication may ride in the
    ///     query.
    ///   - codec: the codec, whose name is the subprotocol asked for (the server must
    ///     agree to it); `JSONCodec()` or `MessagePackCodec()` for live-server.
    ///   - headers: extra request headers (e.g. `Authorization`).
    /// - Throws: `ClientError`: `.connectFailed` (refused, no such host), `.rejected` with
    ///   the HTTP status (401, 403...), `.handshakeFailed`, `.invalidArgument`.
    public static func connect(
        to url: URL, codec: any Codec = JSONCodec(), headers: [String: String] = [:],
        options: ClientOptions = ClientOptions()
    ) async throws -> LiveClient {
        let target = try Self.target(url, codec: codec, headers: headers)
        let core = ClientCore(target: target, codec: codec, options: options)
        try await core.connectFirst()
        return LiveClient(core: core)
    }

    deinit { core.stop() }

    static func target(_ url: URL, codec: any Codec, headers: [String: String]) throws -> Attempt.Target {
        guard let c = URLComponents(url: url, resolvingAgainstBaseURL: false) else {
            throw ClientError.invalidArgument("not a URL: \(url)")
        }
        let scheme = c.scheme?.lowercased()
        guard scheme == "ws" || scheme == "wss" else {
            throw ClientError.invalidArgument("only ws:// and wss:// URLs are supported: \(url)")
        }
        guard var host = c.host, !host.isEmpty else { throw ClientError.invalidArgument("no host in \(url)") }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = c.port ?? (scheme == "wss" ? 443 : 80)
        guard (1...65535).contains(port) else { throw ClientError.invalidArgument("port \(port)") }
        var path = c.percentEncodedPath.isEmpty ? "/" : c.percentEncodedPath
        if let q = c.percentEncodedQuery { path += "?" + q }
        var lines = ""
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            let bad = { (s: String) in s.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" } }
            guard !name.isEmpty, !bad(name), !bad(value), !name.contains(":") else {
                throw ClientError.invalidArgument("header \(name)")
            }
            lines += "\(name): \(value)\r\n"
        }
        return Attempt.Target(host: host, port: UInt16(port), target: path, headers: lines, subprotocol: codec.name,
                              tls: scheme == "wss")
    }

    /// Subscribes to a topic, and again after every reconnect.
    public func join(_ topic: String) async throws { try await core.join(topic) }

    /// Unsubscribes (and stops rejoining).
    public func leave(_ topic: String) async throws {
        core.forget(topic)
        _ = try await core.request(Message(type: "leave", topic: topic))
    }

    /// Sends body to every subscriber of topic (under JSON, body must be one JSON value).
    public func publish(_ body: Bytes, to topic: String) async throws {
        _ = try await core.request(Message(type: "publish", topic: topic, body: body))
    }

    /// The sessions subscribed to topic, as the server's JSON array (at most its who
    /// limit of them; needs presence on the server).
    public func who(_ topic: String) async throws -> Bytes {
        try await core.request(Message(type: "who", topic: topic)).body
    }

    /// How many sessions are subscribed to topic (needs presence on the server).
    public func count(_ topic: String) async throws -> Int {
        let body = try await core.request(Message(type: "count", topic: topic)).body
        let o = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
        guard let n = o?["count"] as? Int else { throw ClientError.server("count: unexpected reply \(body.string)") }
        return n
    }

    /// Any request: sends message with a fresh ref and returns the server's reply.
    public func request(_ message: Message) async throws -> Message { try await core.request(message) }

    /// Sends a message without a ref (nothing is answered).
    public func send(_ message: Message) throws { try core.send(message) }

    /// Every message that is not a reply to a request, from now on (a new sequence per
    /// call; each buffers what its reader has not taken yet). Ends when the client closes.
    public var messages: AsyncStream<Message> { core.messages(topic: nil) }

    /// The messages whose topic is `topic`, from now on.
    public func messages(for topic: String) -> AsyncStream<Message> { core.messages(topic: topic) }

    /// The connection's state now, then every change, until `.closed`.
    public var states: AsyncStream<ConnectionState> { core.states() }

    /// The connection's state now.
    public var state: ConnectionState { core.phase }

    /// Closes the session with 1000 (no reconnect) and returns once it is closed.
    public func close() async { await core.close() }
}
