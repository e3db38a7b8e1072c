import CLive
import CoreMetrics
import Logging
import Synchronization

/// Reports the core's counters through swift-metrics (docs/METRICS.md names them all).
///
/// The core counts per event loop as it works; this reads the sums every
/// `Options.metricsInterval` (and whenever `Server.reportMetrics()` asks, e.g. on a scrape)
/// and reports what changed since the last reading. Nothing here runs per message or per
/// delivery. Only the handshake timers are recorded as they happen, once per handshake.
final class MetricsReporter: Sendable {
    private let logger: Logger
    private let factory: any MetricsFactory
    private let last = Locked<Stats?>(nil)
    private let codecNames: [String]

    // counters
    private let opened: MetricCounter
    private let closed: [Stats.CloseKind: MetricCounter]
    private let received: MetricCounter
    private let published: MetricCounter
    private let deliveries: MetricCounter
    private let skipped: MetricCounter
    private let framesOut: MetricCounter
    private let bytesOut: MetricCounter
    private let overflows: MetricCounter
    private let budgetCloses: MetricCounter
    private let rateLimited: MetricCounter
    private let coalesced: MetricCounter
    private let throttled: MetricCounter
    private let refusedSubscribes: MetricCounter
    private let tlsHandshakes: MetricCounter
    private let tlsFailures: MetricCounter
    // gauges
    private let connections: Gauge
    private let sessions: Gauge
    private let subscriptions: Gauge
    private let topics: Gauge
    private let queuedFrames: Gauge
    private let queuedBytes: Gauge
    // publish to queued: a Prometheus histogram's series, from the core's log2 buckets
    private let fanoutBuckets: [MetricCounter]
    private let fanoutSum: FloatingPointCounter
    private let fanoutCount: MetricCounter
    // recorded per handshake
    let handshake: Timer
    let auth: Timer

    /// Upper bounds of the core's fanout buckets in seconds (2^i microseconds), "+Inf" last.
    static let bucketBounds: [String] = (0..<Int(CLIVE_TIMING_BUCKETS)).map { i in
        i == Int(CLIVE_TIMING_BUCKETS) - 1 ? "+Inf" : "\(Double(1 << i) / 1_000_000)"
    }

    init(logger: Logger, codecNames: [String], factory: any MetricsFactory) {
        self.logger = logger
        self.codecNames = codecNames
        self.factory = factory
        opened = MetricCounter(label: "live_sessions_opened_total", factory: factory)
        received = MetricCounter(label: "live_messages_received_total", factory: factory)
        published = MetricCounter(label: "live_messages_published_total", factory: factory)
        deliveries = MetricCounter(label: "live_deliveries_total", factory: factory)
        skipped = MetricCounter(label: "live_deliveries_skipped_total", factory: factory)
        framesOut = MetricCounter(label: "live_frames_written_total", factory: factory)
        bytesOut = MetricCounter(label: "live_bytes_written_total", factory: factory)
        overflows = MetricCounter(label: "live_queue_overflows_total", factory: factory)
        budgetCloses = MetricCounter(label: "live_queue_budget_closes_total", factory: factory)
        rateLimited = MetricCounter(label: "live_messages_rate_limited_total", factory: factory)
        coalesced = MetricCounter(label: "live_messages_coalesced_total", factory: factory)
        throttled = MetricCounter(label: "live_messages_throttled_total", factory: factory)
        refusedSubscribes = MetricCounter(label: "live_subscribes_refused_total", factory: factory)
        tlsHandshakes = MetricCounter(label: "live_tls_handshakes_total", factory: factory)
        tlsFailures = MetricCounter(label: "live_tls_failures_total", factory: factory)
        connections = Gauge(label: "live_connections", factory: factory)
        sessions = Gauge(label: "live_sessions", factory: factory)
        subscriptions = Gauge(label: "live_subscriptions", factory: factory)
        topics = Gauge(label: "live_topics", factory: factory)
        queuedFrames = Gauge(label: "live_queued_frames", factory: factory)
        queuedBytes = Gauge(label: "live_queued_bytes", factory: factory)
        fanoutSum = FloatingPointCounter(label: "live_publish_queued_seconds_sum", factory: factory)
        fanoutCount = MetricCounter(label: "live_publish_queued_seconds_count", factory: factory)
        handshake = Timer(label: "live_handshake_seconds", preferredDisplayUnit: .seconds, factory: factory)
        auth = Timer(label: "live_auth_seconds", preferredDisplayUnit: .seconds, factory: factory)
        var closed: [Stats.CloseKind: MetricCounter] = [:]
        for kind in Stats.CloseKind.allCases {
            closed[kind] = MetricCounter(label: "live_sessions_closed_total", dimensions: [("reason", kind.name)],
                                         factory: factory)
        }
        self.closed = closed
        fanoutBuckets = Self.bucketBounds.map {
            MetricCounter(label: "live_publish_queued_seconds_bucket", dimensions: [("le", $0)], factory: factory)
        }
    }

    /// Reports what changed since the last call. Any thread; calls are serialised.
    func report(_ now: Stats, openedSoFar: Int, encodeFailures: [Int]) {
        last.withLock { previous in
            let was = previous
            previous = now
            func delta(_ key: KeyPath<Stats, Int>) -> Int64 {
                Int64(max(0, now[keyPath: key] - (was?[keyPath: key] ?? 0)))
            }
            func add(_ counter: MetricCounter, _ key: KeyPath<Stats, Int>) {
                let d = delta(key)
                if d > 0 { counter.increment(by: d) }
            }
            add(received, \.messagesIn)
            add(published, \.published)
            add(deliveries, \.deliveries)
            add(skipped, \.skipped)
            add(framesOut, \.framesOut)
            add(bytesOut, \.bytesOut)
            add(overflows, \.overflows)
            add(budgetCloses, \.budgetCloses)
            add(rateLimited, \.rateLimited)
            add(coalesced, \.coalesced)
            add(throttled, \.throttled)
            add(refusedSubscribes, \.refusedSubscribes)
            add(tlsHandshakes, \.tlsHandshakes)
            add(tlsFailures, \.tlsFailures)
            add(fanoutCount, \.fanouts)
            let ns = delta(\.fanoutNanoseconds)
            if ns > 0 { fanoutSum.increment(by: Double(ns) / 1e9) }
            // Prometheus buckets are cumulative: each counts every fanout at or under its bound.
            var cumulative: Int64 = 0
            for (i, counter) in fanoutBuckets.enumerated() {
                cumulative += Int64(max(0, now.fanoutHistogram[i] - (was?.fanoutHistogram[i] ?? 0)))
                if cumulative > 0 { counter.increment(by: cumulative) }
            }
            for (kind, counter) in closed {
                let d = (now.closed[kind] ?? 0) - (was?.closed[kind] ?? 0)
                if d > 0 { counter.increment(by: Int64(d)) }
            }
            var refusals: [String] = []
            for (status, n) in now.rejected.sorted(by: { $0.key < $1.key }) {
                let d = n - (was?.rejected[status] ?? 0)
                guard d > 0 else { continue }
                let label = status == 0 ? "other" : String(status)
                MetricCounter(label: "live_upgrades_rejected_total", dimensions: [("status", label)], factory: factory)
                    .increment(by: Int64(d))
                refusals.append("\(label): \(d)")
            }
            if !refusals.isEmpty {
                // The core refuses without calling into Swift (bad requests, origins,
                // connection caps), so its refusals are logged here, once per report.
                logger.info("upgrades refused", metadata: ["by_status": "\(refusals.joined(separator: ", "))"])
            }
            connections.record(now.connections)
            sessions.record(now.sessions)
            subscriptions.record(now.subscriptions)
            topics.record(now.topics)
            queuedFrames.record(now.queuedFrames)
            queuedBytes.record(now.queuedBytes)
            reportOpened(openedSoFar)
            reportEncodeFailures(encodeFailures)
        }
    }

    private let openedSeen = Locked(0)
    private func reportOpened(_ total: Int) {
        let d = openedSeen.withLock { seen in
            defer { seen = max(seen, total) }
            return total - seen
        }
        if d > 0 { opened.increment(by: Int64(d)) }
    }

    private let encodeFailuresSeen = Locked<[Int]>([])
    private func reportEncodeFailures(_ totals: [Int]) {
        let deltas = encodeFailuresSeen.withLock { seen in
            if seen.count != totals.count { seen = Array(repeating: 0, count: totals.count) }
            defer { seen = totals }
            return zip(totals, seen).map { $0 - $1 }
        }
        for (slot, d) in deltas.enumerated() where d > 0 && slot < codecNames.count {
            MetricCounter(label: "live_publish_encode_failures_total", dimensions: [("codec", codecNames[slot])],
                          factory: factory).increment(by: Int64(d))
        }
    }
}

/// swift-metrics' counter (`Counter` in this module is an atomic count, ServerCore.swift).
typealias MetricCounter = CoreMetrics.Counter
