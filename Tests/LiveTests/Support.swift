// Shared test machinery: an event recorder that tests await (no sleeps), and a server
// harness that records every handler call in order.

import Foundation
import Live
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

struct WaitTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// A lock-protected, append-only log that tests can await conditions on.
final class Recorder<T: Sendable>: Sendable {
    private struct Waiter {
        let id: Int
        let predicate: @Sendable ([T]) -> Bool
        let continuation: CheckedContinuation<[T], Error>
    }

    private struct State {
        var items: [T] = []
        var waiters: [Waiter] = []
        var expired: Set<Int> = []
        var nextID = 0
    }

    private let state = Locked(State())

    init() {}

    func append(_ item: T) {
        let ready = state.withLock { s -> [(CheckedContinuation<[T], Error>, [T])] in
            s.items.append(item)
            var ready: [(CheckedContinuation<[T], Error>, [T])] = []
            let items = s.items
            s.waiters.removeAll { w in
                guard w.predicate(items) else { return false }
                ready.append((w.continuation, items))
                return true
            }
            return ready
        }
        for (c, items) in ready { c.resume(returning: items) }
    }

    var items: [T] { state.withLock { $0.items } }

    /// Returns the log once `predicate` holds for it; throws after `timeout` (a generous
    /// upper bound, not a speed requirement).
    @discardableResult
    func wait(
        _ what: String, timeout: Duration = .seconds(15),
        until predicate: @escaping @Sendable ([T]) -> Bool
    ) async throws -> [T] {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            self?.expire(id, what: what)
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<[T], Error>) in
            let outcome = state.withLock { s -> Result<[T], Error>? in
                if predicate(s.items) { return .success(s.items) }
                if s.expired.remove(id) != nil { return .failure(WaitTimeout(what: what)) }
                s.waiters.append(Waiter(id: id, predicate: predicate, continuation: c))
                return nil
            }
            if let outcome { c.resume(with: outcome) }
        }
    }

    private func expire(_ id: Int, what: String) {
        let waiter = state.withLock { s -> Waiter? in
            if let i = s.waiters.firstIndex(where: { $0.id == id }) { return s.waiters.remove(at: i) }
            s.expired.insert(id)
            return nil
        }
        let items = self.items
        waiter?.continuation.resume(throwing: WaitTimeout(what: "\(what); log: \(items)"))
    }
}

/// A one-shot gate a handler can await and a test opens.
final class Gate: Sendable {
    private let state = Locked<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    init() {}

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0.resume() }
    }
}

/// What the handlers saw, in order.
enum Event: Sendable, CustomStringConvertible {
    case auth(Request)
    case message(Session, Message)
    case close(Session, CloseReason)

    var session: Session? {
        switch self {
        case .auth: return nil
        case .message(let s, _), .close(let s, _): return s
        }
    }

    var message: Message? {
        if case .message(_, let m) = self { return m }
        return nil
    }

    var closeReason: CloseReason? {
        if case .close(_, let r) = self { return r }
        return nil
    }

    var description: String {
        switch self {
        case .auth(let r): return "auth(\(r.path)?\(r.query))"
        case .message(let s, let m): return "message(\(s.id), \(m.type))"
        case .close(let s, let r): return "close(\(s.id), \(r))"
        }
    }
}

extension Array where Element == Event {
    var closes: [(Session, CloseReason)] {
        compactMap { if case .close(let s, let r) = $0 { return (s, r) } else { return nil } }
    }

    var messages: [(Session, Message)] {
        compactMap { if case .message(let s, let m) = $0 { return (s, m) } else { return nil } }
    }

    var requests: [Request] {
        compactMap { if case .auth(let r) = $0 { return r } else { return nil } }
    }

    func closes(of session: Session) -> [CloseReason] {
        closes.filter { $0.0 == session }.map(\.1)
    }

    /// The sessions that sent a message of this type (first occurrence order).
    func sessions(sending type: String) -> [Session] {
        var seen: [Session] = []
        for (s, m) in messages where m.type == type && !seen.contains(s) { seen.append(s) }
        return seen
    }
}

/// The server under test, with every handler call recorded in `events`.
///
/// `onMessage` gets the `Server` (for `pubsub`) along with the session and message; by
/// default it echoes the message back. `configure` may set `onAuth`/`onClose` too: they are
/// wrapped so the recording happens first.
final class TestServer: Sendable {
    typealias Handler = @Sendable (Server, Session, Message) -> Void

    let server: Server
    let events = Recorder<Event>()

    init(_ configure: (inout Options) -> Void = { _ in }, onMessage: Handler? = nil) throws {
        var options = Options()
        options.eventLoops = 1
        options.logger.logLevel = .critical
        options.closeTimeout = .seconds(5)
        configure(&options)
        let events = self.events
        let box = ServerBox()
        if let auth = options.onAuth {
            options.onAuth = { request in
                events.append(.auth(request))
                return try await auth(request)
            }
        }
        let userClose = options.onClose
        options.onClose = { session, reason in
            events.append(.close(session, reason))
            userClose?(session, reason)
        }
        let handler = onMessage ?? { _, session, message in try? session.send(message) }
        options.onMessage = { session, message in
            events.append(.message(session, message))
            guard let server = box.server else { return }
            handler(server, session, message)
        }
        server = try Server(options: options)
        box.server = server
        try server.listen(host: "127.0.0.1", port: 0)
        try server.start()
    }

    var port: Int { server.port }
    var pubsub: InProcessPubSub { server.pubsub }

    /// Shuts the server down and returns once it has stopped. `clients` still connected
    /// are dropped, so that the server need not wait `closeTimeout` for their close replies.
    func stop(_ clients: WSClient...) async throws {
        server.shutdown()
        clients.forEach { $0.drop() }
        try await server.run()
    }

    /// Waits until `n` sessions have closed; returns their reasons in order.
    @discardableResult
    func waitForCloses(_ n: Int) async throws -> [(Session, CloseReason)] {
        try await events.wait("\(n) onClose calls") { $0.closes.count >= n }.closes
    }

    /// Waits until `session` has closed and returns its reason.
    func waitForClose(of session: Session) async throws -> CloseReason {
        try await events.wait("onClose of \(session)") { !$0.closes(of: session).isEmpty }.closes(of: session)[0]
    }

    /// Waits for the `n`th message (1-based) of this type and returns its session.
    func waitForMessage(_ type: String, count n: Int = 1) async throws -> [(Session, Message)] {
        try await events.wait("\(n) messages of type \(type)") {
            $0.messages.filter { $0.1.type == type }.count >= n
        }.messages.filter { $0.1.type == type }
    }
}

/// The server, for the handlers: set once before `start()`, read-only afterwards; weak so
/// that the options' closures do not keep the server alive.
private final class ServerBox: @unchecked Sendable {
    weak var server: Server?
}

// MARK: messages on the client side

/// A JSON message as a client writes it. `body` is raw JSON.
func json(_ type: String, topic: String = "", ref: String = "", body: String? = nil) -> String {
    var fields = [#""type":\#(quoted(type))"#]
    if !topic.isEmpty { fields.append(#""topic":\#(quoted(topic))"#) }
    if !ref.isEmpty { fields.append(#""ref":\#(quoted(ref))"#) }
    if let body { fields.append(#""body":\#(body)"#) }
    return "{" + fields.joined(separator: ",") + "}"
}

private func quoted(_ s: String) -> String {
    let data = try! JSONSerialization.data(withJSONObject: [s], options: [.fragmentsAllowed])
    let array = String(decoding: data, as: UTF8.self)  // ["..."]
    return String(array.dropFirst().dropLast())
}

/// Decodes what a JSON client received (the codec itself is tested on its own).
func decodeJSON(_ text: String) throws -> Message {
    try JSONCodec().decode(Frame(kind: .text, payload: Bytes(text)))
}

func encodeMsgPack(_ m: Message) throws -> [UInt8] {
    Array(try MessagePackCodec().encode(m).payload)
}

func decodeMsgPack(_ bytes: [UInt8]) throws -> Message {
    try MessagePackCodec().decode(Frame(kind: .binary, payload: Bytes(bytes)))
}

extension WSClient {
    /// Sends a JSON message.
    func send(_ type: String, topic: String = "", ref: String = "", body: String? = nil) throws {
        try sendText(json(type, topic: topic, ref: ref, body: body))
    }

    /// The next JSON message.
    func receiveMessage() async throws -> Message {
        try decodeJSON(try await receiveText())
    }

    /// Reads JSON messages up to and including the first of type `type`.
    func receiveMessages(through type: String) async throws -> [Message] {
        var out: [Message] = []
        while true {
            let m = try await receiveMessage()
            out.append(m)
            if m.type == type { return out }
        }
    }
}

/// The thread an event-loop callback runs on, as a number.
func currentThreadID() -> UInt { UInt(pthread_self()) }
