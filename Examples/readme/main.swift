import Live

var options = Options()
options.onAuth = { request in
    guard let user = request.queryValue("user") else { throw Rejection(status: .unauthorized) }
    return ["user": .string(user)]
}
options.onMessage = { session, message in
    try? session.pubsub.subscribe(session, to: message.topic)
    try? session.pubsub.publish(message, to: message.topic)
}
let server = try Server(options: options)
try server.listen(host: "127.0.0.1", port: 8080)
try await server.run()
