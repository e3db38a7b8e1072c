// live-server's GET /metrics: the Prometheus text of everything reported through
// swift-metrics, on the main port or (--metrics-port) a server of its own.
import Live
import Logging
import Prometheus
import Synchronization

/// The server, once it exists: the HTTP handler is made before it.
final class ServerBox: Sendable {
    private let server = Locked<Server?>(nil)
    func set(_ s: Server) { server.withLock { $0 = s } }
    var value: Server? { server.withLock { $0 } }
}

/// The Prometheus exposition of everything reported through swift-metrics.
struct MetricsEndpoint: Sendable {
    let registry: PrometheusCollectorRegistry
    let servers: [ServerBox]

    func response() -> Response {
        // Fresh figures for every scrape, besides the reporter's interval.
        for box in servers { box.value?.reportMetrics() }
        return Response(contentType: "text/plain; version=0.0.4; charset=utf-8",
                        body: Bytes(registry.emitToBuffer()))
    }
}

/// A server of its own for GET /metrics (--metrics-port): plain HTTP only, one loop, and
/// no metrics of its own (its upgrades are all refused).
func metricsServer(_ metrics: MetricsEndpoint, logger: Logger) throws -> Server {
    var options = Options()
    options.logger = logger
    options.eventLoops = 1
    options.metricsInterval = nil
    options.onAuth = { _ in throw Rejection(status: .notFound, body: "metrics only\n") }
    options.onHTTP = { request in
        guard request.path == "/metrics", request.method == .get else {
            return Response(status: .notFound, contentType: "text/plain", body: "not found\n")
        }
        return metrics.response()
    }
    return try Server(options: options)
}
