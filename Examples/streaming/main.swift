// Streaming: a job that publishes its log lines (every one) and its progress (a throttled
// topic: the server lets at most one through per interval and always the last) as it runs.
//
//   swift run -c release live-server --throttle progress:200 --rate-limit 0 &
//   live sub ws://127.0.0.1:8080/ws logs:build progress:build &
//   swift run -c release live-example-streaming ws://127.0.0.1:8080/ws build 500
import Foundation
import Live
import LiveClient

let args = CommandLine.arguments
let url = URL(string: args.count > 1 ? args[1] : "ws://127.0.0.1:8080/ws")!
let job = args.count > 2 ? args[2] : "build"
let steps = args.count > 3 ? max(1, Int(args[3]) ?? 100) : 100

/// A JSON string literal for text.
func json(_ text: String) -> Bytes {
    Bytes(Array(try! JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed])))
}

do {
    let client = try await LiveClient.connect(to: url)
    for step in 1...steps {
        // the work of one step would go here
        try await client.publish(json("step \(step) of \(steps) done"), to: "logs:\(job)")
        try await client.publish(Bytes(#"{"percent":\#(step * 100 / steps)}"#), to: "progress:\(job)")
    }
    await client.close()
} catch {
    FileHandle.standardError.write("streaming: \(error)\n".data(using: .utf8)!)
    exit(1)
}
