// live-server's dashboard (--dashboard): the server's figures, published once a second on
// a reserved topic that only the page GET /dashboard serves may join.
import Foundation
import Live
import Logging
import ServiceLifecycle

/// The dashboard's reserved topic, and who may join it.
enum Dashboard {
    static let topic = "live:dashboard"

    /// Whether `topic` is reserved: no client publishes there, and only a session the
    /// dashboard page opened (meta "dashboard", given by onAuth for the page's token) joins.
    static func isReserved(_ topic: String) -> Bool { topic.hasPrefix("live:") }

    /// A random token the page carries, so that only a page this server served joins.
    static func newToken() -> String {
        (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }
}

/// Publishes the server's figures on `Dashboard.topic` once a second, as JSON counters
/// (the page turns them into rates).
struct DashboardPublisher: Service {
    let server: Server
    let logger: Logger

    func run() async throws {
        let start = ContinuousClock.now
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: .seconds(1))
            let s = server.stats
            let t = ContinuousClock.now - start
            let drops = s.overflows + s.rateLimited + s.coalesced + s.throttled + s.skipped
            let json = #"{"t":\#(Double(t.components.seconds) + Double(t.components.attoseconds) / 1e18),"#
                + #""sessions":\#(s.sessions),"connections":\#(s.connections),"#
                + #""messagesIn":\#(s.messagesIn),"framesOut":\#(s.framesOut),"published":\#(s.published),"#
                + #""deliveries":\#(s.deliveries),"queuedBytes":\#(s.queuedBytes),"drops":\#(drops)}"#
            do {
                try server.pubsub.publish(Message(type: "message", topic: Dashboard.topic, body: Bytes(json)),
                                          to: Dashboard.topic)
            } catch {
                return  // shutting down
            }
        }
    }
}
