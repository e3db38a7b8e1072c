// What Server.reportMetrics() reports through swift-metrics (docs/METRICS.md), recorded by a
// factory of the test's own (Options.metricsFactory), against real traffic.

import CoreMetrics
import Live
import Synchronization
import Testing

/// A swift-metrics backend that keeps each metric's total (counters) or last value
/// (gauges), and how many values each timer got, by "label{name=value,...}".
final class MetricsRecorder: MetricsFactory, Sendable {
    let values = Mutex<[String: Double]>([:])

    subscript(_ key: String) -> Double? { values.withLock { $0[key] } }

    final class Handler: CounterHandler, FloatingPointCounterHandler, RecorderHandler, TimerHandler, Sendable {
        let key: String
        let recorder: MetricsRecorder
        init(_ key: String, _ recorder: MetricsRecorder) { (self.key, self.recorder) = (key, recorder) }
        func add(_ v: Double) { recorder.values.withLock { $0[key, default: 0] += v } }
        func set(_ v: Double) { recorder.values.withLock { $0[key] = v } }
        func increment(by amount: Int64) { add(Double(amount)) }
        func increment(by amount: Double) { add(amount) }
        func reset() { set(0) }
        func record(_ value: Int64) { set(Double(value)) }
        func record(_ value: Double) { set(value) }
        func recordNanoseconds(_ duration: Int64) { recorder.values.withLock { $0[key + ":count", default: 0] += 1 } }
        func preferDisplayUnit(_ unit: TimeUnit) {}
    }

    private func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.isEmpty ? label : label + "{" + dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        Handler(key(label, dimensions), self)
    }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        Handler(key(label, dimensions), self)
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(key(label, dimensions), self)
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Handler(key(label, dimensions), self)
    }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

@Suite struct MetricsTests {
    @Test func aPublishToThreeSubscribersReportsThreeDeliveriesOnce() async throws {
        let metrics = MetricsRecorder()
        let s = try TestServer({
            $0.eventLoops = 2
            $0.metricsFactory = metrics
            $0.metricsInterval = nil  // only when asked: the test decides when figures are read
        }) { server, session, message in
            switch message.type {
            case "sub":
                try? server.pubsub.subscribe(session, to: message.topic)
                try? session.send(Message(type: "subscribed", topic: message.topic))
            case "shout":
                try? server.pubsub.publish(Message(type: "shouted", topic: message.topic), to: message.topic)
            default:
                try? session.send(message)
            }
        }
        var subscribers: [WSClient] = []
        for _ in 0..<3 {
            let (c, _) = try await WSClient.connect(port: s.port)
            try await c.subscribe("news")
            subscribers.append(c)
        }
        let (publisher, _) = try await WSClient.connect(port: s.port)
        try publisher.send("shout", topic: "news")
        for c in subscribers {
            #expect(try await c.receiveMessage() == Message(type: "shouted", topic: "news"))
        }
        s.server.reportMetrics()
        #expect(metrics["live_deliveries_total"] == 3)
        #expect(metrics["live_messages_published_total"] == 1)
        #expect(metrics["live_messages_received_total"] == 4)  // three subs and a shout
        #expect(metrics["live_sessions_opened_total"] == 4)
        #expect(metrics["live_sessions"] == 4)
        #expect(metrics["live_subscriptions"] == 3)
        #expect(metrics["live_handshake_seconds:count"] == 4)
        let timed = try #require(metrics["live_publish_queued_seconds_count"])
        #expect(timed >= 1 && timed <= 2)  // once per loop holding a subscriber
        #expect(metrics["live_publish_queued_seconds_bucket{le=+Inf}"] == timed)

        // a second report without traffic adds nothing; a close is counted by its reason
        try subscribers[0].sendClose(code: 1000)
        try await s.waitForCloses(1)
        s.server.reportMetrics()
        #expect(metrics["live_deliveries_total"] == 3)
        #expect(metrics["live_sessions_closed_total{reason=client_closed}"] == 1)
        #expect(metrics["live_sessions"] == 3)
        try await s.stop(subscribers[0], subscribers[1], subscribers[2], publisher)
    }

    @Test func refusalsByOnAuthAreCountedByStatusAndTimed() async throws {
        let metrics = MetricsRecorder()
        let s = try TestServer({
            $0.metricsFactory = metrics
            $0.metricsInterval = nil
            $0.onAuth = { request in
                guard request.path == "/ok" else { throw Rejection(status: .forbidden) }
                return Meta()
            }
        })
        let (refused, response) = try await WSClient.handshake(port: s.port, path: "/no")
        #expect(response.status == 403)
        refused.drop()
        let (accepted, _) = try await WSClient.connect(port: s.port, path: "/ok")
        try accepted.sendText(json("ping"))
        _ = try await accepted.receiveMessage()
        s.server.reportMetrics()
        #expect(metrics["live_upgrades_rejected_total{status=403}"] == 1)
        #expect(metrics["live_auth_seconds:count"] == 2)
        #expect(metrics["live_handshake_seconds:count"] == 1)
        try await s.stop(accepted)
    }
}
