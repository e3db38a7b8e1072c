/// Why a connection ended or a request failed.
public enum ClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The URL is not a ws:// URL with a host, or a header cannot be sent.
    case invalidArgument(String)
    /// Resolving or connecting failed (e.g. "connection refused").
    case connectFailed(String)
    /// The server answered the upgrade with an HTTP status (401, 403, 429, 503...).
    case rejected(status: Int, reason: String)
    /// The server's 101 was wrong (Sec-WebSocket-Accept, subprotocol), or it timed out.
    case handshakeFailed(String)
    /// The server closed the session: its close code (1005 for none) and reason, e.g.
    /// 4008 for a slow consumer, 1008 for a policy such as the rate limit.
    case closedByServer(code: Int, reason: String)
    /// The server broke the protocol or sent a frame the codec cannot read; the client
    /// closed with this code (1002, 1003, 1007 or 1009).
    case protocolError(code: Int, reason: String)
    /// Nothing was heard from the server, pings included, within the idle timeout.
    case serverSilent
    /// The TCP connection ended without a close frame.
    case connectionLost(String)
    /// The server answered a request with `error` and this reason (e.g. "not allowed").
    case server(String)
    /// The server did not answer a request within the request timeout.
    case timedOut
    /// The request could not be sent: the client is between connections.
    case notConnected
    /// `close()` was called.
    case closed
    /// The codec cannot carry the message (e.g. a body that is not JSON under JSON).
    case unencodable(String)

    /// Whether this is about the connection (it ended or is not there) rather than the
    /// request: retrying once the client has reconnected may succeed.
    public var isConnectionLoss: Bool {
        switch self {
        case .closedByServer, .protocolError, .serverSilent, .connectionLost, .notConnected: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .invalidArgument(let s): return "invalid argument: \(s)"
        case .connectFailed(let s): return "could not connect: \(s)"
        case .rejected(let status, let reason): return "the server refused the connection: \(reason.isEmpty ? String(status) : reason)"
        case .handshakeFailed(let s): return "handshake failed: \(s)"
        case .closedByServer(let code, let reason):
            return "the server closed the session: \(code)\(reason.isEmpty ? "" : " \(reason)")"
        case .protocolError(let code, let reason): return "protocol error from the server: closed with \(code) (\(reason))"
        case .serverSilent: return "the server went silent"
        case .connectionLost(let s): return "connection lost: \(s)"
        case .server(let reason): return "the server refused: \(reason)"
        case .timedOut: return "the server did not answer in time"
        case .notConnected: return "not connected"
        case .closed: return "closed"
        case .unencodable(let s): return "cannot encode: \(s)"
        }
    }
}

/// Where a client's connection stands, as `LiveClient.states` reports it.
public enum ConnectionState: Sendable, Hashable {
    /// A connection attempt is under way.
    case connecting
    /// Connected, and every joined topic joined again.
    case open
    /// The connection ended (why); a reconnect follows after `waiting`.
    case disconnected(ClientError)
    /// Waiting `delay` before reconnect attempt number `attempt` (1, 2, ...).
    case waiting(attempt: Int, delay: Duration)
    /// For good: `close()` was called (nil), or the client gave up (why).
    case closed(ClientError?)
}
