// An agent on LiveClient: waits for tasks on a topic, works on each, and reports progress
// and the result on the task's own topic. Reconnects (and joins "tasks" again) on its own.
//
//   swift run -c release live-example-agent ws://127.0.0.1:8080/ws
//   live pub ws://127.0.0.1:8080/ws tasks '{"id":"42","steps":3}'
//   live sub ws://127.0.0.1:8080/ws task:42      # progress, then the result
import Foundation
import Live
import LiveClient

struct Job: Decodable {
    var id: String
    var steps: Int
}

let url = URL(string: CommandLine.arguments.dropFirst().first ?? "ws://127.0.0.1:8080/ws")!
let client: LiveClient
do {
    client = try await LiveClient.connect(to: url)
} catch {
    FileHandle.standardError.write("agent: \(error)\n".data(using: .utf8)!)
    exit(1)
}
let tasks = client.messages(for: "tasks")
try await client.join("tasks")
FileHandle.standardOutput.write("agent: waiting for tasks\n".data(using: .utf8)!)

for await message in tasks {
    guard let task = try? JSONDecoder().decode(Job.self, from: Data(message.body)), task.steps > 0 else { continue }
    let topic = "task:\(task.id)"
    for step in 1...task.steps {
        // the work itself would go here; the agent reports each step as it finishes it
        try? await client.publish(Bytes(#"{"progress":\#(step),"of":\#(task.steps)}"#), to: topic)
    }
    try? await client.publish(Bytes(#"{"done":true}"#), to: topic)
}
