// hb-pubsub: the live-server conventions on Hummingbird 2 + HummingbirdWebSocket, written
// the way the Hummingbird examples do it, as a peer for bench/race.
//
//   hb-pubsub [--host 127.0.0.1] [--port 8080]     prints "PORT <n>" once listening
//
// JSON text frames on /ws:
//   {"type":"join","topic":T,"ref":R}            subscribe to T
//   {"type":"leave","topic":T,"ref":R}           unsubscribe from T
//   {"type":"publish","topic":T,"body":B,"ref":R} every subscriber of T gets
//                                                {"type":"message","topic":T,"body":B}
//   {"type":"echo",...}                          comes back unchanged
// With a non-empty ref the sender then gets {"type":"reply","ref":R,"topic":T}, or
// {"type":"error","ref":R,"body":{"reason":"..."}}.
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import Synchronization

/// Topic -> subscribed connections' outbound writers, behind a lock.
final class Topics: Sendable {
    private let subscribers = Mutex<[String: [Int: WebSocketOutboundWriter]]>([:])

    func join(_ topic: String, id: Int, writer: WebSocketOutboundWriter) {
        subscribers.withLock { $0[topic, default: [:]][id] = writer }
    }

    func leave(_ topic: String, id: Int) {
        subscribers.withLock { topics in
            topics[topic]?[id] = nil
            if topics[topic]?.isEmpty == true { topics[topic] = nil }
        }
    }

    func writers(of topic: String) -> [WebSocketOutboundWriter] {
        subscribers.withLock { $0[topic].map { Array($0.values) } ?? [] }
    }
}

let topics = Topics()
let nextID = Atomic<Int>(0)

func encode(_ object: [String: Any]) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])) ?? Data()
    return String(decoding: data, as: UTF8.self)
}

struct Refusal: Error {
    let reason: String
}

/// One WebSocket session: reads messages until the client goes, then leaves its topics.
func session(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
    let id = nextID.add(1, ordering: .relaxed).newValue
    var joined = Set<String>()
    defer {
        for topic in joined { topics.leave(topic, id: id) }
    }
    for try await message in inbound.messages(maxSize: 1 << 24) {
        guard case .text(let text) = message,
              let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        else { continue }
        let type = object["type"] as? String ?? ""
        let topic = object["topic"] as? String ?? ""
        let ref = object["ref"] as? String ?? ""
        do {
            switch type {
            case "echo":
                try await outbound.write(.text(text))
                continue
            case "join":
                if topic.isEmpty { throw Refusal(reason: "missing topic") }
                topics.join(topic, id: id, writer: outbound)
                joined.insert(topic)
            case "leave":
                if topic.isEmpty { throw Refusal(reason: "missing topic") }
                topics.leave(topic, id: id)
                joined.remove(topic)
            case "publish":
                if topic.isEmpty { throw Refusal(reason: "missing topic") }
                let frame = encode(["type": "message", "topic": topic, "body": object["body"] ?? NSNull()])
                for writer in topics.writers(of: topic) {
                    // a subscriber that is going away must not stop the others
                    try? await writer.write(.text(frame))
                }
            default:
                throw Refusal(reason: "unknown type")
            }
            if !ref.isEmpty {
                try await outbound.write(.text(encode(["type": "reply", "ref": ref, "topic": topic])))
            }
        } catch let refusal as Refusal {
            if !ref.isEmpty {
                try await outbound.write(.text(encode(["type": "error", "ref": ref, "body": ["reason": refusal.reason]])))
            }
        }
    }
}

func option(_ name: String) -> String? {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

let host = option("--host") ?? "127.0.0.1"
let port = Int(option("--port") ?? "8080") ?? 8080
var logger = Logger(label: "hb-pubsub")
logger.logLevel = .warning

let router = Router()
router.get("/") { _, _ in "hb-pubsub: WebSocket endpoint /ws\n" }

let app = Application(
    router: router,
    server: .http1WebSocketUpgrade { request, _, _ in
        guard request.path == "/ws" else { return .dontUpgrade }
        return .upgrade([:]) { inbound, outbound, _ in
            try await session(inbound: inbound, outbound: outbound)
        }
    },
    configuration: .init(address: .hostname(host, port: port), serverName: nil),
    onServerRunning: { channel in
        // unbuffered, so that a script reading the pipe sees it at once
        FileHandle.standardOutput.write(Data("PORT \(channel.localAddress?.port ?? port)\n".utf8))
    },
    logger: logger
)
try await app.runService()
