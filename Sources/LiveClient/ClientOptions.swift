/// How a `LiveClient` connects, waits and reconnects. The defaults match live.js.
public struct ClientOptions: Sendable {
    /// How long a request (join, publish, who...) waits for the server's reply.
    public var requestTimeout: Duration = .seconds(10)
    /// Reconnect backoff: attempt n waits between half and all of
    /// min(maxDelay, minDelay * 2^(n-1)), at random, so that clients dropped together do
    /// not come back together.
    public var minDelay: Duration = .milliseconds(250)
    public var maxDelay: Duration = .seconds(10)
    /// Reconnect after a connection that was open ends. A first connection that fails is
    /// never retried: `connect` throws instead.
    public var reconnect = true
    /// Connect and upgrade.
    public var handshakeTimeout: Duration = .seconds(10)
    /// Ping a server quiet this long; give up on one silent for `idleTimeout`.
    public var pingInterval: Duration = .seconds(30)
    public var idleTimeout: Duration = .seconds(60)
    /// The largest message accepted from the server (else the client closes with 1009).
    public var maxMessageSize = 16 << 20
    /// wss:// only: a PEM file of the certificates to trust for the server's chain (a
    /// private CA, or a development server's own self-signed certificate) instead of the
    /// system's trust store.
    public var trustedCertificatesFile: String? = nil
    /// wss:// only: check the server's certificate, its chain and its name. `false`
    /// accepts any certificate, for a development server only: never over the internet.
    public var verifyCertificate = true

    public init() {}
}

extension Duration {
    var milliseconds: Int64 {
        let (s, atto) = components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}
