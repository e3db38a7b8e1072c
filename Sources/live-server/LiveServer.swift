// live-server: Live with the LiveRooms conventions, a demo page and the browser client.
//
//   swift run -c release live-server            # http://127.0.0.1:8080/, ws://127.0.0.1:8080/ws
import ArgumentParser
import Foundation
import Live
import LiveCommandLine
import LiveRedis
import LiveRooms
import Logging
import HTTPTypes
import Metrics
import Prometheus
import ServiceLifecycle

@main
struct LiveServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live-server",
        abstract: "A realtime pub/sub server: WebSocket endpoint /ws, demo page /, client /live.js.")

    @Option(help: "Address to bind.") var host = "127.0.0.1"
    // .unconditional: "--port -1" is a bad port (said so below), not a missing value
    @Option(parsing: .unconditional, help: "Port to bind, 0...65535; 0 picks a free one.") var port = 8080
    @Option(parsing: .unconditional, help: "Event loops; 0 means one per usable CPU; at most 4 per CPU.") var eventLoops = 0
    @Option(parsing: .unconditional, help: "Frames queued per session before it is closed as too slow.") var queueSize = 1024
    @Option(parsing: .unconditional, help: "Bytes queued per session before it is closed as too slow: by default one maximal message and 1 MiB behind it.")
    var queueBytes = 2 << 20
    @Option(parsing: .unconditional, help: "Largest message a client may send, in bytes.") var maxMessageSize = 1 << 20
    @Option(parsing: .unconditional, help: "Messages a second one session may send (more are dropped; staying over closes it with 1008); 0: no limit.")
    var rateLimit = 100
    @Option(parsing: .unconditional, help: "Messages one session may send in a burst above --rate-limit.") var rateBurst = 200
    @Option(parsing: .unconditional, help: "Connections at once; 0 means no limit.") var maxSessions = 0
    @Option(parsing: .unconditional, help: "Connections at once from one IPv4 address or IPv6 /64 (more get 429); 0 means no limit.")
    var maxSessionsPerIp = 0
    @Option(parsing: .unconditional, help: "Topics one session may be subscribed to at once.") var maxTopicsPerSession = 128
    @Option(parsing: .unconditional, help: "Bytes in a topic name (UTF-8), at most 65535.") var maxTopicLength = 255
    @Option(parsing: .unconditional, help: "Bytes queued for all sessions together; past it the largest queues are closed as too slow.")
    var maxQueuedBytes = 512 << 20
    @Option(parsing: .unconditional, help: "Members a who reply lists at most (count gives the true number).") var whoLimit = 32
    @Option(help: "Codec for clients that ask for none: json or msgpack.") var defaultCodec = "json"
    @Option(name: .customLong("allowed-origin"), help: "An Origin allowed to connect (repeat it); none: any.")
    var allowedOrigins: [String] = []
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"
    @OptionGroup var tls: TLSFlags
    @Flag(help: "Do not publish join/leave presence events (who still answers).") var noPresenceEvents = false
    @Flag(help: "Accept permessage-deflate (RFC 7692) from clients that offer it; a publish is compressed once for all of them.")
    var deflate = false
    @Option(parsing: .unconditional, help: "How long joins and leaves are collected into one presence event, in milliseconds.")
    var presenceBatchMs = 50
    @Option(name: .customLong("latest-only-prefix"),
            help: "Topics with this prefix are 'latest value wins' (repeat it).")
    var latestOnlyPrefixes: [String] = []
    @Option(name: .customLong("throttle"), help: "PREFIX:MILLISECONDS: throttle these topics (repeat it).")
    var throttles: [String] = []
    @Flag(help: "Do not export metrics (GET /metrics).") var noMetrics = false
    @Option(help: "Serve GET /metrics on this port instead of the main one.") var metricsPort: Int?
    @Flag(help: "Serve GET /dashboard and publish the server's figures to it once a second (they reveal load).")
    var dashboard = false

    @Option(help: "Share topics with other live-server processes through Redis: redis://HOST[:PORT][/DB] (the password, if any, from the environment variable LIVE_REDIS_PASSWORD).")
    var redis: String? = nil
    @Option(help: "This node's id among the nodes sharing a Redis (letters, digits, - and _); default: generated.")
    var nodeId: String? = nil
    @Option(help: "With --redis: /healthz answers 503 once Redis has been unreachable this many seconds, so a load balancer can drain the node; 0: keep answering 200.")
    var redisUnhealthyAfter = 0
    @Option(help: "With --redis: seconds after which a node's presence entries in Redis expire unless it refreshes them (every third of it), so a crashed node's members vanish.")
    var redisPresenceTtl = 10.0
    @Option(help: "With --redis: bytes of publishes waiting for Redis; past it they are dropped (counted in /healthz), so a slow Redis cannot make the node hold ever more.")
    var redisQueueBytes = 8 << 20

    func validate() throws {
        guard (0...65535).contains(port) else {
            throw ValidationError("--port must be 0...65535 (0 picks a free port), got \(port)")
        }
        let loopLimit = 4 * ProcessInfo.processInfo.activeProcessorCount
        guard eventLoops <= loopLimit else {
            throw ValidationError("--event-loops must be at most 4 per CPU (\(loopLimit) here), got \(eventLoops)")
        }
        for spec in throttles { _ = try throttlePolicy(spec) }
        if let redis {
            do { _ = try RedisURL(redis) } catch { throw ValidationError("--redis \(error)") }
        }
        if let nodeId, nodeId.isEmpty || nodeId.utf8.count > 64
            || !nodeId.unicodeScalars.allSatisfy({ $0.properties.isASCIIHexDigit || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || $0 == "-" || $0 == "_" })
        {
            throw ValidationError("--node-id must be 1 to 64 letters, digits, - or _")
        }
        guard redisQueueBytes >= 1 else { throw ValidationError("--redis-queue-bytes must be at least 1") }
        guard redisPresenceTtl >= 0.01 else { throw ValidationError("--redis-presence-ttl must be at least 0.01") }
        guard redisUnhealthyAfter >= 0 else { throw ValidationError("--redis-unhealthy-after must be 0 or more") }
        guard ["json", "msgpack"].contains(defaultCodec) else {
            throw ValidationError("--default-codec must be json or msgpack")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level") }
        for (flag, value) in [("--queue-size", queueSize), ("--queue-bytes", queueBytes),
                              ("--max-message-size", maxMessageSize), ("--rate-burst", rateBurst),
                              ("--max-topics-per-session", maxTopicsPerSession), ("--max-topic-length", maxTopicLength),
                              ("--max-queued-bytes", maxQueuedBytes)] where value < 1 {
            throw ValidationError("\(flag) must be at least 1")
        }
        for (flag, value) in [("--rate-limit", rateLimit), ("--max-sessions", maxSessions), ("--max-sessions-per-ip", maxSessionsPerIp),
                              ("--who-limit", whoLimit), ("--event-loops", eventLoops),
                              ("--presence-batch-ms", presenceBatchMs)] where value < 0 {
            throw ValidationError("\(flag) must be 0 or more")
        }
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be between 0 and 65535")
        }
    }

    func run() async throws {
        var logger = Logger(label: "live-server")
        logger.logLevel = Logger.Level(rawValue: logLevel)!
        var options = Options()
        options.logger = logger
        // swift-metrics goes to Prometheus; the registry is read on every scrape.
        let registry = PrometheusCollectorRegistry()
        if noMetrics {
            options.metricsInterval = nil
        } else {
            var factory = PrometheusMetricsFactory(registry: registry)
            // handshakes take microseconds to milliseconds, below the default buckets
            let fast: [Duration] = [.microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
                                    .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10),
                                    .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10)]
            factory.durationHistogramBuckets = ["live_handshake_seconds": fast, "live_auth_seconds": fast]
            MetricsSystem.bootstrap(factory)
        }
        let box = ServerBox()
        let metrics = noMetrics ? nil : MetricsEndpoint(registry: registry, servers: [box])
        let dashboardToken = dashboard ? Dashboard.newToken() : nil
        options.codec = defaultCodec == "json" ? JSONCodec() : MessagePackCodec()
        options.codecs = [JSONCodec(), MessagePackCodec()]
        options.eventLoops = eventLoops > 0 ? eventLoops : nil
        options.queueSize = queueSize
        options.queueBytes = queueBytes
        options.maxMessageSize = maxMessageSize
        options.rateLimit = rateLimit > 0 ? .init(messagesPerSecond: rateLimit, burst: rateBurst) : nil
        options.maxSessions = maxSessions > 0 ? maxSessions : nil
        options.maxSessionsPerIP = maxSessionsPerIp > 0 ? maxSessionsPerIp : nil
        options.maxTopicsPerSession = maxTopicsPerSession
        options.maxTopicLength = maxTopicLength
        options.maxQueuedBytesTotal = maxQueuedBytes
        options.allowedOrigins = allowedOrigins
        options.topicPolicies = latestOnlyPrefixes.map { .init(prefix: $0, latestValueWins: true) }
            + (try throttles.map(throttlePolicy))
        var presence = PresenceOptions()
        presence.events = !noPresenceEvents
        presence.batchInterval = .milliseconds(presenceBatchMs)
        presence.publicField = "name"
        options.presence = presence
        options.compression = deflate ? Options.Compression() : nil
        options.onAuth = { request in
            guard request.path == "/ws" else { throw Rejection(status: .notFound, body: "WebSocket endpoint is /ws") }
            // The demo's identity: a display name from the query, nothing secret, of at most
            // 32 bytes (not Characters: one Character can be thousands of bytes).
            let name = displayName(request.queryValue("name") ?? "")
            let display: Meta.Value = .string(name.isEmpty ? "guest" : name)
            if let dashboardToken, request.queryValue("dashboard") == dashboardToken {
                return ["name": display, "dashboard": true]
            }
            return ["name": display]
        }
        if let nodeId { options.nodeID = nodeId }
        var broker: RedisBroker? = nil
        if let redis {
            var url = try RedisURL(redis)
            if let secret = ProcessInfo.processInfo.environment["LIVE_REDIS_PASSWORD"], !secret.isEmpty {
                url.password = secret
            }
            var redisLogger = logger
            redisLogger[metadataKey: "node"] = "\(options.nodeID)"
            broker = RedisBroker(url: url, maxQueuedBytes: redisQueueBytes, presenceTTL: .milliseconds(Int(redisPresenceTtl * 1000)), logger: redisLogger)
            options.broker = broker
            logger.info("sharing topics through \(url) as node \(options.nodeID)")
        }
        let health = Health(broker: broker, unhealthyAfter: .seconds(redisUnhealthyAfter))
        let assets = try Assets(dashboardToken: dashboardToken)
        let mainMetrics = metricsPort == nil ? metrics : nil
        options.onHTTP = { request in
            if request.path == "/metrics", let mainMetrics, request.method == .get { return mainMetrics.response() }
            if request.path == "/healthz" { return health.response(for: request) }
            return assets.response(for: request)
        }
        let rooms = Rooms(authorize: DemoPolicy.authorize, whoLimit: whoLimit)
        let server = try rooms.makeServer(options: options)
        box.set(server)
        let certificate = try tls.listen(server, host: host, port: port)
        var services: [any Service] = [server]
        if let certificate { services.append(CertificateReloader(certificate: certificate, logger: logger)) }
        if let metricsPort, let metrics {
            let side = try metricsServer(metrics, logger: logger)
            try side.listen(host: host, port: metricsPort)
            try side.start()
            services.append(side)
            logger.info("metrics on their own port", metadata: ["port": "\(side.port)"])
        }
        try server.start()
        if dashboard { services.append(DashboardPublisher(server: server, logger: logger)) }
        func base(_ port: Int) -> String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
        var line = "live-server: http://\(base(server.port))/  ws://\(base(server.port))/ws"
        if tls.enabled {
            let secure = "https://\(base(server.tlsPort))/  wss://\(base(server.tlsPort))/ws"
            line = tls.tlsPort == nil ? "live-server: \(secure)" : "\(line)\nlive-server: \(secure)"
        }
        let announce = Announcement(line: line)
        services.append(announce)
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                                 logger: logger))
        try await group.run()
    }
}

/// /healthz: "ok", and with --redis the broker's state. Answers 503 when the node has
/// been cut off from Redis longer than --redis-unhealthy-after (when that is not 0).
struct Health: Sendable {
    let broker: RedisBroker?
    let unhealthyAfter: Duration

    func response(for request: Request) -> Response {
        var status: HTTPResponse.Status = .ok
        var text = "ok\n"
        if let broker {
            let s = broker.stats
            let state = s.connected ? "connected (\(s.sharded ? "sharded" : "plain") pub/sub)"
                : "unreachable for \(s.downFor.components.seconds * 1000 + s.downFor.components.attoseconds / 1_000_000_000_000_000) ms"
            if !s.connected && unhealthyAfter > .zero && s.downFor >= unhealthyAfter {
                status = .serviceUnavailable
                text = "unhealthy: cut off from redis\n"
            }
            text += "redis: \(state)\n"
            text += "redis_outages: \(s.outages)\nredis_published: \(s.published)\n"
            text += "redis_dropped_while_down: \(s.droppedWhileDown)\nredis_dropped_queue_full: \(s.droppedQueueFull)\n"
            text += "redis_received: \(s.received)\nredis_malformed: \(s.malformed)\nredis_topics: \(s.topics)\n"
        }
        var response = Response(status: status, contentType: "text/plain", body: Bytes(text))
        if request.method == .head { response.body = Bytes() }
        return response
    }
}

/// A `--throttle PREFIX:MILLISECONDS` value as a policy, or an error that says what is wrong.
func throttlePolicy(_ spec: String) throws -> Options.TopicPolicy {
    guard let colon = spec.lastIndex(of: ":") else {
        throw ValidationError("--throttle takes PREFIX:MILLISECONDS, got \"\(spec)\" (no colon)")
    }
    guard let ms = Int(spec[spec.index(after: colon)...]), ms > 0 else {
        throw ValidationError("--throttle \"\(spec)\": the interval must be a whole number of milliseconds above 0")
    }
    return .init(prefix: String(spec[..<colon]), throttle: .milliseconds(ms))
}

/// A display name cut to at most 32 UTF-8 bytes, at a Unicode scalar boundary.
func displayName(_ name: String) -> String {
    var bytes = 0
    let scalars = name.unicodeScalars.prefix { scalar in
        bytes += UTF8.width(scalar)
        return bytes <= 32
    }
    return String(scalars)
}

/// The demo's topic authorisation: anyone joins and publishes in rooms, but only names
/// starting with "admin" may publish to "announcements".
enum DemoPolicy {
    static func authorize(_ session: Session, _ action: Rooms.Action, _ topic: String) -> Bool {
        if Dashboard.isReserved(topic) {
            // the server's own figures: only the dashboard page joins, nobody publishes
            return action == .join && topic == Dashboard.topic && session.meta["dashboard"] == .bool(true)
        }
        if topic == "announcements" && action == .publish {
            return session.meta.string("name")?.hasPrefix("admin") == true
        }
        return true
    }
}

/// The demo page and the browser client, embedded in the executable's resources.
struct Assets: Sendable {
    var files: [String: (type: String, body: Bytes)]

    init(dashboardToken: String? = nil) throws {
        guard let dir = Bundle.module.url(forResource: "Public", withExtension: nil) else {
            throw ValidationError("live-server's resources are missing")
        }
        func load(_ name: String, _ type: String) throws -> (String, Bytes) {
            (type, Bytes(try Data(contentsOf: dir.appendingPathComponent(name))))
        }
        files = [
            "/": try load("index.html", "text/html; charset=utf-8"),
            "/live.js": try load("live.js", "text/javascript; charset=utf-8"),
        ]
        if let dashboardToken {
            // the page carries the token that lets it join the reserved topic
            let (type, page) = try load("dashboard.html", "text/html; charset=utf-8")
            let html = String(decoding: page.withUnsafeBytes { Array($0) }, as: UTF8.self)
            files["/dashboard"] = (type, Bytes(html.replacingOccurrences(of: "{{TOKEN}}", with: dashboardToken)))
        }
    }

    func response(for request: Request) -> Response {
        guard request.method == .get || request.method == .head else {
            var headers = HTTPFields()
            headers[.allow] = "GET, HEAD"
            return Response(status: .methodNotAllowed, headers: headers, body: "GET or HEAD\n")
        }
        var response: Response
        if request.path == "/healthz" {
            response = Response(contentType: "text/plain", body: "ok\n")
        } else if request.path == "/ws" {
            response = .upgradeRequired()  // the WebSocket endpoint, asked without an upgrade
        } else if let file = files[request.path] {
            response = Response(contentType: file.type, body: file.body)
        } else {
            response = Response(status: .notFound, contentType: "text/plain", body: "not found\n")
        }
        if request.method == .head { response.body = Bytes() }
        return response
    }
}
