// View runtime: the server pushes UI patches to a page over a "latest value wins" topic, so a
// slow page skips intermediate patches and always ends on the newest state.
//
//   swift run -c release live-example-view --port 8080      # open http://127.0.0.1:8080/
//   curl -X POST 'http://127.0.0.1:8080/run?n=5000'          # push 5000 patches at once
import Foundation
import HTTPTypes
import Live
import LiveRooms

/// The server, for the HTTP handler that publishes; set once it exists.
final class ServerRef: @unchecked Sendable {
    var server: Server?
}

let args = CommandLine.arguments
let port = args.firstIndex(of: "--port").flatMap { Int(args[$0 + 1]) } ?? 8080
let ref = ServerRef()

var options = Options()
// a patch replaces the one still unsent in a page's queue instead of queueing behind it
options.topicPolicies = [Options.TopicPolicy(prefix: "view:", latestValueWins: true)]
options.onHTTP = { request in
    switch (request.method, request.path) {
    case (.get, "/"):
        return Response(contentType: "text/html; charset=utf-8", body: Bytes(page))
    case (.post, "/run"):
        let n = max(1, Int(request.queryValue("n") ?? "") ?? 1000)
        for i in 1...n {
            let patch = Bytes(#"{"count":\#(i),"label":"patch \#(i) of \#(n)"}"#)
            try? ref.server?.pubsub.publish(Message(type: "message", topic: "view:state", body: patch), to: "view:state")
        }
        return Response(contentType: "application/json", body: Bytes(#"{"published":\#(n)}"#))
    default:
        return Response(status: .notFound, contentType: "text/plain", body: "GET / or POST /run?n=N\n")
    }
}
let server = try Rooms().makeServer(options: options)
ref.server = server
try server.listen(port: port)
FileHandle.standardOutput.write(
    "view: http://127.0.0.1:\(server.port)/ ws://127.0.0.1:\(server.port)/ws\n".data(using: .utf8)!)
try await server.run()
