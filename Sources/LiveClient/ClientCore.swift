import CLive
import Foundation
import Live
import Synchronization

/// The state behind a LiveClient: the current attempt, the joined topics, the requests
/// waiting for their reply, the subscribers to messages and states. Callbacks arrive on the
/// core's client loop thread; API calls on any thread. Everything is under one lock, and
/// continuations are resumed after it is released.
final class ClientCore: Sendable {
    let target: Attempt.Target
    let codec: any Codec
    let options: ClientOptions

    private struct Pending {
        var continuation: CheckedContinuation<Message, Error>
        var timer: Task<Void, Never>
    }

    private struct State {
        var attempt: Attempt?
        var connected = false  // the handle is open: requests may be sent
        var phase: ConnectionState = .connecting
        var topics: [String] = []  // joined, in join order
        var pending: [String: Pending] = [:]
        var nextRef = 1
        var retries = 0
        var stopped = false
        var finished = false
        var everOpened = false
        var firstOpen: CheckedContinuation<Void, Error>?
        var localError: ClientError?  // why we closed, when it was not close()
        var messageStreams: [Int: (topic: String?, continuation: AsyncStream<Message>.Continuation)] = [:]
        var stateStreams: [Int: AsyncStream<ConnectionState>.Continuation] = [:]
        var nextStream = 0
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    init(target: Attempt.Target, codec: any Codec, options: ClientOptions) {
        self.target = target
        self.codec = codec
        self.options = options
    }

    // MARK: connecting

    /// The first connection: returns once it is open, throws why it failed.
    func connectFirst() async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            state.withLock { $0.firstOpen = c }
            startAttempt()
        }
    }

    func startAttempt() {
        let a = Attempt(core: self)
        let go = state.withLock { s -> Bool in
            if s.stopped { return false }
            s.attempt = a
            s.localError = nil
            return true
        }
        guard go else { return }
        setPhase(.connecting)
        let rc = a.start(target, options: options)
        if rc != 0 {
            ended(a, why: .connectFailed(String(cString: clive_strerror(rc))))
        }
    }

    func attach(_ handle: OpaquePointer?, to a: Attempt) {
        state.withLock { s in
            if a.handle == nil { a.handle = handle }
        }
    }

    func opened(_ a: Attempt, handle: OpaquePointer?, subprotocol: Int) {
        let (topics, first) = state.withLock { s -> ([String], CheckedContinuation<Void, Error>?) in
            if a.handle == nil { a.handle = handle }
            guard s.attempt === a else { return ([], nil) }
            if s.stopped {  // close() came while connecting
                _ = "bye".withCString { clive_client_close(handle, 1000, $0, 3) }
                return ([], nil)
            }
            if subprotocol != 0 {
                // the server would speak its default codec, which may not be ours
                s.localError = .handshakeFailed("the server did not agree to \(codec.name)")
                clive_client_close(handle, 1000, nil, 0)
                return ([], nil)
            }
            s.connected = true
            s.retries = 0
            s.everOpened = true
            defer { s.firstOpen = nil }
            return (s.topics, s.firstOpen)
        }
        if let first {
            setPhase(.open)
            first.resume()
            return
        }
        guard !topics.isEmpty else {
            setPhase(.open)
            return
        }
        // join again, then say open, so that "open" means "receiving what I joined"
        Task {
            await withTaskGroup(of: Void.self) { group in
                for topic in topics {
                    group.addTask {
                        do {
                            _ = try await self.request(Message(type: "join", topic: topic))
                        } catch ClientError.server {
                            self.forget(topic)  // refused now (e.g. not allowed): stop rejoining it
                        } catch {}
                    }
                }
            }
            let current = state.withLock { $0.attempt === a && $0.connected }
            if current { setPhase(.open) }
        }
    }

    func received(_ frame: Frame, on a: Attempt) {
        let message: Message
        do {
            message = try codec.decode(frame)
        } catch {
            let (code, why): (UInt16, String) =
                if case CodecError.wrongFrameKind = error { (1003, "wrong frame kind") } else { (1007, "undecodable message") }
            state.withLock { s in
                guard s.attempt === a, s.localError == nil else { return }
                s.localError = .protocolError(code: Int(code), reason: why)
                s.connected = false
                _ = why.withCString { clive_client_close(a.handle, code, $0, why.utf8.count) }
            }
            return
        }
        let (waiting, streams) = state.withLock {
            s -> (Pending?, [AsyncStream<Message>.Continuation]) in
            if !message.ref.isEmpty, let p = s.pending.removeValue(forKey: message.ref) {
                return (p, [])
            }
            let streams = s.messageStreams.values.filter { $0.topic == nil || $0.topic == message.topic }
            return (nil, streams.map(\.continuation))
        }
        if let waiting {
            waiting.timer.cancel()
            if message.type == "error" {
                waiting.continuation.resume(throwing: ClientError.server(Self.reason(message.body)))
            } else {
                waiting.continuation.resume(returning: message)
            }
            return
        }
        for c in streams { c.yield(message) }
    }

    static func reason(_ body: Bytes) -> String {
        let data = Data(body)
        if let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let r = o["reason"] as? String {
            return r
        }
        return body.string
    }

    /// The attempt ended (on_close, or a connect that failed at once).
    func ended(_ a: Attempt, why reported: ClientError) {
        struct After {
            var failed: [Pending] = []
            var first: CheckedContinuation<Void, Error>?
            var why: ClientError = .closed
            var reconnect: Duration?
            var attemptNumber = 0
            var finish = false
        }
        let after = state.withLock { s -> After in
            var out = After()
            if let h = a.handle {
                a.handle = nil
                clive_client_release(h)
            }
            guard s.attempt === a else { return out }
            s.attempt = nil
            s.connected = false
            let why = s.localError ?? reported
            out.why = why
            out.failed = Array(s.pending.values)
            s.pending = [:]
            if let first = s.firstOpen {
                s.firstOpen = nil
                out.first = first
                s.stopped = true
                out.finish = true
                return out
            }
            if s.stopped || !options.reconnect {
                s.stopped = true
                out.finish = true
                return out
            }
            s.retries += 1
            out.attemptNumber = s.retries
            let minMs = Double(options.minDelay.milliseconds), maxMs = Double(options.maxDelay.milliseconds)
            let ceiling = min(maxMs, minMs * pow(2, Double(s.retries - 1)))
            out.reconnect = .milliseconds(Int64(ceiling / 2 + Double.random(in: 0...(ceiling / 2))))
            return out
        }
        // the state first, so that whoever a failure below wakes sees the connection gone
        if after.finish {
            finish(after.why == .closed ? nil : after.why)
        } else if let delay = after.reconnect {
            setPhase(.disconnected(after.why))
            setPhase(.waiting(attempt: after.attemptNumber, delay: delay))
        }
        // a request in flight fails with why the connection ended (e.g. 4008 from the server)
        for p in after.failed {
            p.timer.cancel()
            p.continuation.resume(throwing: after.why)
        }
        if let first = after.first {
            first.resume(throwing: after.why)
        }
        if !after.finish, let delay = after.reconnect {
            Task {
                try? await Task.sleep(for: delay)
                self.startAttempt()
            }
        }
    }

    private func finish(_ why: ClientError?) {
        let (streams, states, waiters) = state.withLock { s in
            s.finished = true
            s.phase = .closed(why)
            defer {
                s.messageStreams = [:]
                s.stateStreams = [:]
                s.closeWaiters = []
            }
            return (Array(s.messageStreams.values), Array(s.stateStreams.values), s.closeWaiters)
        }
        for m in streams { m.continuation.finish() }
        for c in states {
            c.yield(.closed(why))
            c.finish()
        }
        for w in waiters { w.resume() }
    }

    private func setPhase(_ phase: ConnectionState) {
        let streams = state.withLock { s -> [AsyncStream<ConnectionState>.Continuation] in
            if s.finished { return [] }
            s.phase = phase
            return Array(s.stateStreams.values)
        }
        for c in streams { c.yield(phase) }
    }

    // MARK: the API's side

    var phase: ConnectionState { state.withLock { $0.phase } }

    func join(_ topic: String) async throws {
        state.withLock { s in
            if !s.topics.contains(topic) { s.topics.append(topic) }
        }
        do {
            _ = try await request(Message(type: "join", topic: topic))
        } catch ClientError.server(let reason) {
            forget(topic)
            throw ClientError.server(reason)
        }
    }

    func forget(_ topic: String) {
        state.withLock { s in s.topics.removeAll { $0 == topic } }
    }

    /// Sends message with a fresh ref and waits for the reply with that ref.
    func request(_ message: Message) async throws -> Message {
        var message = message
        let ref = state.withLock { s -> String in
            defer { s.nextRef += 1 }
            return String(s.nextRef)
        }
        message.ref = ref
        let frame: Frame
        do {
            frame = try codec.encode(message)
        } catch {
            throw ClientError.unencodable("\(error)")
        }
        let timeout = options.requestTimeout
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<Message, Error>) in
            let timer = Task {
                try? await Task.sleep(for: timeout)
                if Task.isCancelled { return }
                let p = self.state.withLock { $0.pending.removeValue(forKey: ref) }
                p?.continuation.resume(throwing: ClientError.timedOut)
            }
            let failure = state.withLock { s -> ClientError? in
                if s.stopped { return .closed }
                guard s.connected, let h = s.attempt?.handle else { return .notConnected }
                s.pending[ref] = Pending(continuation: c, timer: timer)
                let rc = Self.send(frame, on: h)
                if rc != 0 {
                    s.pending[ref] = nil
                    return rc == CLIVE_EOVERFLOW.rawValue ? .unencodable("send queue full") : .notConnected
                }
                return nil
            }
            if let failure {
                timer.cancel()
                c.resume(throwing: failure)
            }
        }
    }

    /// Sends without a ref: nothing is answered.
    func send(_ message: Message) throws {
        let frame: Frame
        do {
            frame = try codec.encode(message)
        } catch {
            throw ClientError.unencodable("\(error)")
        }
        let rc = state.withLock { s -> Int32 in
            guard s.connected, let h = s.attempt?.handle else { return -1 }
            return Self.send(frame, on: h)
        }
        if rc != 0 { throw ClientError.notConnected }
    }

    private static func send(_ frame: Frame, on handle: OpaquePointer) -> Int32 {
        frame.payload.withUnsafeBytes { p in
            clive_client_send(handle, frame.kind == .binary ? 1 : 0, p.baseAddress, p.count)
        }
    }

    func messages(topic: String?) -> AsyncStream<Message> {
        let (stream, continuation) = AsyncStream<Message>.makeStream()
        let id = state.withLock { s -> Int? in
            if s.finished { return nil }
            s.nextStream += 1
            s.messageStreams[s.nextStream] = (topic, continuation)
            return s.nextStream
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.messageStreams.removeValue(forKey: id) }
        }
        return stream
    }

    func states() -> AsyncStream<ConnectionState> {
        let (stream, continuation) = AsyncStream<ConnectionState>.makeStream()
        let (id, now) = state.withLock { s -> (Int?, ConnectionState) in
            if s.finished { return (nil, s.phase) }
            s.nextStream += 1
            s.stateStreams[s.nextStream] = continuation
            return (s.nextStream, s.phase)
        }
        continuation.yield(now)
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.stateStreams.removeValue(forKey: id) }
        }
        return stream
    }

    /// Closes for good and returns once the connection is gone.
    func close() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let (done, idle) = state.withLock { s -> (Bool, Bool) in
                if s.finished { return (true, false) }
                s.closeWaiters.append(c)
                s.stopped = true
                if let h = s.attempt?.handle {
                    _ = "bye".withCString { clive_client_close(h, 1000, $0, 3) }
                    return (false, false)
                }
                return (false, s.attempt == nil)  // waiting to reconnect: nothing to close
            }
            if done { c.resume() }
            if idle { finish(nil) }
        }
    }

    /// Stops without waiting (the client was dropped).
    func stop() {
        let idle = state.withLock { s -> Bool in
            if s.finished || s.stopped { return false }
            s.stopped = true
            if let h = s.attempt?.handle {
                _ = "bye".withCString { clive_client_close(h, 1000, $0, 3) }
                return false
            }
            return s.attempt == nil
        }
        if idle { finish(nil) }
    }
}
