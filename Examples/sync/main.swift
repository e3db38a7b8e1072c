// Sync acceleration: a service whose resource (a list of notes) has a version. Each change
// publishes "scope advanced" ({"version": N}) to scope:notes; clients pull the resource over
// HTTP when told. Live carries notifications, not state: a client that missed messages (it
// was offline, or its queue overflowed) still converges by pulling.
//
//   swift run -c release live-example-sync --port 8080
//   live sub ws://127.0.0.1:8080/ws scope:notes               # {"version":N} per change
//   curl -X POST 'http://127.0.0.1:8080/notes?text=hello'     # a change
//   curl http://127.0.0.1:8080/notes                          # the state: version and notes
import Foundation
import HTTPTypes
import Live
import LiveRooms

/// The resource: notes and the version that counts their changes.
final class Notes: @unchecked Sendable {
    private let lock = NSLock()
    private var notes: [String] = []

    /// Adds a note; returns the new version.
    func add(_ text: String) -> Int {
        lock.withLock {
            notes.append(text)
            return notes.count
        }
    }

    /// {"version": N, "notes": [...]}, read at one instant.
    func json() -> Bytes {
        let state: [String: Any] = lock.withLock { ["version": notes.count, "notes": notes] }
        return Bytes(Array(try! JSONSerialization.data(withJSONObject: state, options: [.sortedKeys])))
    }
}

/// The server, for the HTTP handler that publishes; set once it exists.
final class ServerRef: @unchecked Sendable {
    var server: Server?
}

let args = CommandLine.arguments
let port = args.firstIndex(of: "--port").flatMap { Int(args[$0 + 1]) } ?? 8080
let notes = Notes()
let ref = ServerRef()

var options = Options()
options.presence = PresenceOptions()  // so that `live who --count` can tell who listens
options.onHTTP = { request in
    switch (request.method, request.path) {
    case (.get, "/notes"):
        return Response(contentType: "application/json", body: notes.json())
    case (.post, "/notes"):
        let version = notes.add(request.queryValue("text") ?? "")
        // after the change is stored: a client that pulls on this notification sees it
        let scope = Message(type: "message", topic: "scope:notes", body: Bytes(#"{"version":\#(version)}"#))
        try? ref.server?.pubsub.publish(scope, to: "scope:notes")
        return Response(contentType: "application/json", body: Bytes(#"{"version":\#(version)}"#))
    default:
        return Response(status: .notFound, contentType: "text/plain", body: "GET or POST /notes\n")
    }
}
let server = try Rooms().makeServer(options: options)
ref.server = server
try server.listen(port: port)
FileHandle.standardOutput.write(
    "sync: http://127.0.0.1:\(server.port)/notes ws://127.0.0.1:\(server.port)/ws\n".data(using: .utf8)!)
try await server.run()
