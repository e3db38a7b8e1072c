import CLive
import CoreMetrics
import Foundation
import HTTPTypes
import Logging
import Synchronization

/// The bridge between the C core and the Swift handlers: owns the `clive_server`, turns
/// its callbacks into `Request`, `Session`, `Message` and `CloseReason`, and encodes
/// publishes once per codec in use.
///
/// While `onAuth` (or `onHTTP`) runs, a `PendingRequest` is the C session's retained user
/// pointer; a `Session` object replaces it just before the upgrade is accepted. Either is
/// detached exactly once, with `clive_session_take_user`: by the task when it answers, or
/// by `on_close` (where the C core guarantees the last callback), which then cancels the
/// task of a connection that went away.
final class ServerCore: @unchecked Sendable {
    // @unchecked: `handle` is only used through clive functions documented "any thread";
    // everything else is immutable or synchronised.
    let handle: OpaquePointer
    let options: Options
    let codecs: [any Codec]
    let defaultSlot: Int
    let logger: Logger
    /// Open sessions per codec slot, so a publish encodes only for codecs in use.
    let sessionsPerSlot: [Counter]
    let skippedEncodes = Atomic<Int>(0)
    /// Sessions from accept to on_close, by id (`Server.session(id:)`, and the public
    /// presence values, `PresenceOptions.publicField`, read from their meta: a second table
    /// of those was 40 bytes per idle session).
    let sessions = Locked<[UInt64: Session]>([:])
    /// Set by `shutdown()`: publishes and broadcasts then throw `SessionError.closed`
    /// without encoding anything.
    let shuttingDown = Atomic<Bool>(false)
    /// With a broker, "<nodeID>-" before every session id, so that ids are unique across
    /// the nodes that share topics (presence lists and events cross nodes); else "".
    let idPrefix: String
    /// `options.maxRefLength`, read for every received message.
    let maxRefLength: Int
    /// swift-metrics reporting (Metrics.swift): sessions accepted so far, publishes a
    /// codec could not encode by slot, and the reporter.
    let metrics: MetricsReporter
    let accepted = Atomic<Int>(0)
    let encodeFailures: [Counter]
    private let state = Locked(State())

    private struct State {
        var started = false
        var stopped = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var reporting: Task<Void, Never>?
    }

    init(options: Options) throws {
        self.options = options
        codecs = options.codecTable
        defaultSlot = options.defaultCodecSlot
        logger = options.logger
        maxRefLength = options.maxRefLength
        idPrefix = options.broker == nil ? "" : options.nodeID + "-"
        sessionsPerSlot = codecs.map { _ in Counter() }
        encodeFailures = codecs.map { _ in Counter() }
        metrics = MetricsReporter(logger: options.logger, codecNames: codecs.map(\.name),
                                  factory: options.metricsFactory ?? MetricsSystem.factory)
        try options.validate()
        var server: OpaquePointer?
        let rc = options.withCOptions { c in
            c.callbacks.on_request = liveOnRequest
            c.callbacks.on_message = liveOnMessage
            c.callbacks.on_close = liveOnClose
            if options.presence != nil { c.callbacks.on_presence = liveOnPresence }
            if options.broker != nil { c.callbacks.on_interest = liveOnInterest }
            c.callbacks.on_log = liveOnLog
            return clive_server_new(&c, &server)
        }
        guard rc == CLIVE_OK.rawValue, let server else { throw ServerError(rc) }
        handle = server
    }

    deinit { clive_server_free(handle) }

    /// The user pointer the C callbacks receive. Unretained: the callbacks can only run
    /// while the loops run, and the thread waiting for them holds this object.
    var callbackContext: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    func listen(host: String, port: Int) throws {
        guard (0...65535).contains(port) else {
            throw ServerError(CLIVE_EINVAL.rawValue, description: "port \(port) is outside 0...65535")
        }
        let rc = clive_server_listen(handle, host, UInt16(port))
        try check(rc)
    }

    func listen(host: String, port: Int, tls: TLSCertificate) throws {
        guard (0...65535).contains(port) else {
            throw ServerError(CLIVE_EINVAL.rawValue, description: "port \(port) is outside 0...65535")
        }
        try check(clive_server_listen_tls(handle, host, UInt16(port), tls.handle))
    }

    private func check(_ rc: Int32) throws {
        guard rc == CLIVE_OK.rawValue else {
            let why = clive_server_error(handle).map { String(cString: $0) } ?? ""
            throw ServerError(rc, description: why.isEmpty ? nil : why)
        }
    }

    var port: Int { Int(clive_server_port(handle)) }
    var tlsPort: Int { Int(clive_server_tls_port(handle)) }

    func start() throws {
        try state.withLock { s in
            guard !s.started else { throw ServerError(CLIVE_ESTATE.rawValue) }
            s.started = true
        }
        setCallbackContext()
        // The broker starts before the loops, so it hears every topic's first subscriber.
        try options.broker?.start(node: BrokerNode(id: options.nodeID, core: self))
        let rc = clive_server_start(handle)
        if rc == CLIVE_ECLOSED.rawValue {  // shut down before it started: it is stopped
            state.withLock { $0.stopped = true }
        }
        guard rc == CLIVE_OK.rawValue else { throw ServerError(rc) }
        startReporting()
        // One thread parks in clive_server_wait and wakes the async waiters when the loops
        // have stopped; it keeps this object alive until then.
        let thread = Thread { [self] in
            clive_server_wait(handle)
            let waiters = state.withLock { s in
                s.stopped = true
                s.reporting?.cancel()
                defer { s.waiters = [] }
                return s.waiters
            }
            reportMetrics()  // the last figures, closes at shutdown included
            waiters.forEach { $0.resume() }
        }
        thread.name = "live-wait"
        thread.start()
    }

    private func setCallbackContext() {
        // clive_options.callbacks.user is copied at clive_server_new, before `self`
        // existed; the core reads it from there, so it is patched in before start.
        clive_server_set_callback_user(handle, callbackContext)
    }

    func shutdown() {
        shuttingDown.store(true, ordering: .relaxed)
        clive_server_shutdown(handle)
        options.broker?.shutdown()
    }

    /// Returns once the loops have stopped (at once if they never started).
    func waitUntilStopped() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.stopped || !s.started { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    var isStopped: Bool { state.withLock { $0.stopped } }

    // MARK: requests

    // MARK: metrics

    /// Reports the core's counters through swift-metrics now. Any thread.
    func reportMetrics() {
        metrics.report(stats, openedSoFar: accepted.load(ordering: .relaxed),
                       encodeFailures: encodeFailures.map { $0.value.load(ordering: .relaxed) })
    }

    private func startReporting() {
        guard let interval = options.metricsInterval, interval > .zero else { return }
        let task = Task.detached { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard let self, !Task.isCancelled else { return }
                self.reportMetrics()
            }
        }
        state.withLock { $0.reporting = task }
    }

    /// A session's id as the app and clients see it (`Session.ID`).
    func publicID(_ id: UInt64) -> String { idPrefix.isEmpty ? String(id) : idPrefix + String(id) }

    /// The core's id of a session of this node, from its public id.
    func localID(_ id: String) -> UInt64? {
        guard id.hasPrefix(idPrefix) else { return nil }
        return UInt64(id.dropFirst(idPrefix.count))
    }

    /// The core's subprotocol list is the codec table, so its index is the slot.
    func codecSlot(forSubprotocol index: Int32) -> Int {
        index >= 0 && Int(index) < codecs.count ? Int(index) : defaultSlot
    }

    /// Attaches a `Session` and accepts the upgrade. Any thread.
    func accept(_ handle: OpaquePointer, meta: Meta, slot: Int, remoteAddress: String = "",
                requestedAt: ContinuousClock.Instant? = nil) {
        let session = Session(handle: handle, core: self, meta: meta, codecs: codecs, codecSlot: slot,
                              remoteAddress: remoteAddress)
        sessionsPerSlot[slot].value.add(1, ordering: .relaxed)
        sessions.withLock { $0[clive_session_id(handle)] = session }
        clive_session_set_user(handle, Unmanaged.passRetained(session).toOpaque())
        if clive_session_accept(handle, UInt32(slot)) != CLIVE_OK.rawValue {
            // Too late (the handshake timed out): detach unless on_close already did.
            if let p = clive_session_take_user(handle) {
                forget(Unmanaged<Session>.fromOpaque(p).takeRetainedValue())
            }
            return
        }
        accepted.add(1, ordering: .relaxed)
        if let requestedAt { metrics.handshake.recordNanoseconds((ContinuousClock.now - requestedAt).nanoseconds) }
        logger.debug("session opened", metadata: ["session": "\(session.id)", "remote": "\(remoteAddress)"])
    }

    /// Undoes what `accept` recorded about a session that has ended.
    func forget(_ session: Session) {
        let id = clive_session_id(session.handle)
        sessionsPerSlot[session.codecSlot].value.subtract(1, ordering: .relaxed)
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    func respond(_ handle: OpaquePointer, status: Int, headers: HTTPFields = [:], body: Bytes) {
        var lines = ""
        for field in headers { lines += "\(field.name.rawName): \(field.value)\r\n" }
        body.withUnsafeBytes { b in
            _ = lines.withUTF8 { h in
                clive_session_respond(handle, Int32(status), h.baseAddress, h.count, b.baseAddress, b.count)
            }
        }
    }

    // MARK: presence: presenceJSON and presenceChanged are in Presence.swift

    // MARK: publishing

    /// Delivers to this node's subscribers at once, then hands the message to the broker
    /// (if any) for the other nodes.
    func publish(_ message: Message, to topic: String) throws {
        try publishLocally(message, to: topic)
        if let broker = options.broker {
            var message = message
            message.topic = topic
            broker.publish(Envelope(message: message, origin: options.nodeID))
        }
    }

    /// This node's subscribers only: a local publish, or one a broker brought in.
    func publishLocally(_ message: Message, to topic: String) throws {
        if shuttingDown.load(ordering: .relaxed) { throw SessionError.closed }
        let frames = encodeForSessions(message, what: topic)
        defer { frames.forEach { if let f = $0 { clive_frame_release(f) } } }
        var topic = topic
        let rc = topic.withUTF8 { t in
            frames.withUnsafeBufferPointer { clive_publish(handle, t.baseAddress, t.count, $0.baseAddress, $0.count) }
        }
        try SessionError.check(rc)
    }

    func broadcast(_ message: Message) throws {
        if shuttingDown.load(ordering: .relaxed) { throw SessionError.closed }
        let frames = encodeForSessions(message, what: "(broadcast)")
        defer { frames.forEach { if let f = $0 { clive_frame_release(f) } } }
        let rc = frames.withUnsafeBufferPointer { clive_broadcast(handle, $0.baseAddress, $0.count) }
        try SessionError.check(rc)
    }

    /// The message encoded once for each codec that open sessions use (nil for the others,
    /// and for a codec that cannot carry it, which is counted and logged); the caller
    /// releases the frames.
    private func encodeForSessions(_ message: Message, what topic: String) -> [OpaquePointer?] {
        var frames = [OpaquePointer?](repeating: nil, count: codecs.count)
        for slot in codecs.indices where sessionsPerSlot[slot].value.load(ordering: .relaxed) > 0 {
            do {
                frames[slot] = makeCFrame(try codecs[slot].encode(message))
            } catch {
                skippedEncodes.add(1, ordering: .relaxed)
                encodeFailures[slot].value.add(1, ordering: .relaxed)
                logger.debug("publish skipped for codec", metadata: [
                    "codec": "\(codecs[slot].name)", "topic": "\(topic)", "error": "\(error)",
                ])
            }
        }
        return frames
    }
}

private func core(_ user: UnsafeMutableRawPointer?) -> ServerCore {
    Unmanaged<ServerCore>.fromOpaque(user!).takeUnretainedValue()
}

private func string(_ p: UnsafePointer<CChar>?, _ n: Int) -> String {
    guard let p, n > 0 else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
}

private func makeRequest(_ r: UnsafePointer<clive_request>, core: ServerCore) -> Request {
    let r = r.pointee
    var fields = HTTPFields()
    for i in 0..<r.header_count {
        let h = r.headers[i]
        if let name = HTTPField.Name(string(h.name, h.name_len)) {
            fields.append(HTTPField(name: name, value: string(h.value, h.value_len)))
        }
    }
    let sub = r.subprotocol >= 0 ? core.codecs[Int(r.subprotocol)].name : nil
    return Request(
        method: HTTPRequest.Method(string(r.method, r.method_len)) ?? .get,
        path: string(r.path, r.path_len), query: string(r.query, r.query_len), headers: fields,
        remoteAddress: String(cString: r.remote_address), subprotocol: sub)
}

// MARK: C callbacks (on the session's loop thread)

private let liveOnRequest: @convention(c) (OpaquePointer?, UnsafePointer<clive_request>?, UnsafeMutableRawPointer?) -> Void = {
    handle, request, user in
    guard let handle, let request else { return }
    let core = core(user)
    let requestedAt = ContinuousClock.now
    let req = makeRequest(request, core: core)
    if request.pointee.is_upgrade != 0 {
        let slot = core.codecSlot(forSubprotocol: request.pointee.subprotocol)
        let remote = req.remoteAddress
        guard let onAuth = core.options.onAuth else {
            core.accept(handle, meta: Meta(), slot: slot, remoteAddress: remote, requestedAt: requestedAt)
            return
        }
        PendingRequest.start(handle) { pending in
            func refuse(_ status: Int, _ why: String) {
                core.logger.info("upgrade refused by onAuth", metadata: [
                    "remote": "\(remote)", "path": "\(req.path)", "status": "\(status)", "error": "\(why)",
                ])
            }
            do {
                let meta = try await onAuth(req)
                core.metrics.auth.recordNanoseconds((ContinuousClock.now - requestedAt).nanoseconds)
                guard pending.takeBack() else { return }
                core.accept(pending.handle, meta: meta, slot: slot, remoteAddress: remote, requestedAt: requestedAt)
            } catch let rejection as Rejection {
                core.metrics.auth.recordNanoseconds((ContinuousClock.now - requestedAt).nanoseconds)
                guard pending.takeBack() else { return }
                refuse(rejection.status.code, "\(rejection.status)")
                core.respond(pending.handle, status: rejection.status.code, headers: rejection.headers,
                             body: Bytes(rejection.body))
            } catch {
                core.metrics.auth.recordNanoseconds((ContinuousClock.now - requestedAt).nanoseconds)
                guard pending.takeBack() else { return }
                refuse(401, "\(error)")
                core.respond(pending.handle, status: 401, body: Bytes())
            }
        }
    } else if let onHTTP = core.options.onHTTP {
        PendingRequest.start(handle) { pending in
            let response = await onHTTP(req)
            guard pending.takeBack() else { return }
            core.respond(pending.handle, status: response.status.code, headers: response.headers,
                         body: response.body)
        }
    } else {
        let answer = Response.upgradeRequired()
        core.respond(handle, status: answer.status.code, headers: answer.headers, body: answer.body)
    }
}

private let liveOnMessage: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UInt8>?, Int, UnsafeMutableRawPointer?) -> Void = {
    handle, binary, data, length, user in
    guard let handle, let p = clive_session_user(handle) else { return }
    let session = Unmanaged<Session>.fromOpaque(p).takeUnretainedValue()
    let frame = Frame(kind: binary != 0 ? .binary : .text, payload: Bytes(copying: data, count: length))
    let message: Message
    do {
        message = try session.codec.decode(frame)
    } catch {
        let core = core(user)
        let wrongKind: Bool
        if case CodecError.wrongFrameKind = error { wrongKind = true } else { wrongKind = false }
        session.decodeFailure.withLock { $0 = "\(error)" }
        core.logger.debug("closing session: undecodable frame", metadata: [
            "session": "\(session.id)", "error": "\(error)",
        ])
        session.closeUnchecked(code: wrongKind ? 1003 : 1007, reason: wrongKind ? "wrong frame kind" : "cannot decode")
        return
    }
    let core = core(user)
    // A ref is echoed in every reply: a long one would let a client multiply what it makes
    // the server send, so it ends the session before any handler sees it.
    let refBytes = message.ref.utf8.count
    if refBytes > core.maxRefLength {
        session.decodeFailure.withLock { $0 = "ref too long (\(refBytes) bytes, over maxRefLength \(core.maxRefLength))" }
        core.logger.debug("closing session: ref too long", metadata: [
            "session": "\(session.id)", "bytes": "\(refBytes)",
        ])
        session.closeUnchecked(code: 1008, reason: "ref too long")
        return
    }
    core.options.onMessage?(session, message)
}

private let liveOnClose: @convention(c) (OpaquePointer?, clive_close_kind, Int32, UnsafePointer<CChar>?, Int, UnsafeMutableRawPointer?) -> Void = {
    handle, kind, code, reason, reasonLength, user in
    guard let handle, let p = clive_session_take_user(handle) else { return }
    let core = core(user)
    let attached = Unmanaged<AnyObject>.fromOpaque(p).takeRetainedValue()
    if let pending = attached as? PendingRequest {
        // The connection went away while onAuth or onHTTP ran: stop the work for it.
        pending.cancel()
        return
    }
    let session = attached as! Session
    core.forget(session)
    if kind == CLIVE_CLOSED_NOT_OPENED {
        // The handshake timed out between onAuth's answer and the accept: the session
        // never opened, so there is nothing to report.
        return
    }
    let text = string(reason, reasonLength)
    let why: CloseReason
    switch kind {
    case CLIVE_CLOSED_BY_PEER: why = .clientClosed(code: UInt16(code), reason: text)
    case CLIVE_CLOSED_BY_SERVER:
        if let failure = session.decodeFailure.withLock({ $0 }) {
            why = .decodeError(failure)
        } else {
            why = .serverClosed(code: UInt16(code), reason: text)
        }
    case CLIVE_CLOSED_PROTOCOL: why = .protocolError(code: UInt16(code))
    case CLIVE_CLOSED_OVERFLOW: why = .queueOverflow
    case CLIVE_CLOSED_IDLE: why = .idleTimeout
    case CLIVE_CLOSED_SHUTDOWN: why = .shutdown
    case CLIVE_CLOSED_RATE_LIMIT: why = .rateLimited
    default: why = .connectionLost
    }
    core.logger.debug("session closed", metadata: [
        "session": "\(session.id)", "remote": "\(session.remoteAddress)", "reason": "\(why)",
    ])
    core.options.onClose?(session, why)
}

private let liveOnPresence: @convention(c) (UnsafePointer<CChar>?, Int, UnsafePointer<UInt64>?, Int, UnsafePointer<UInt64>?, Int, UnsafeMutableRawPointer?) -> Void = {
    topic, topicLength, joined, joinedCount, left, leftCount, user in
    core(user).presenceChanged(
        topic: string(topic, topicLength),
        joined: joinedCount > 0 ? Array(UnsafeBufferPointer(start: joined, count: joinedCount)) : [],
        left: leftCount > 0 ? Array(UnsafeBufferPointer(start: left, count: leftCount)) : [])
}

extension Duration {
    /// The whole duration in nanoseconds (for swift-metrics timers).
    var nanoseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}

private let liveOnInterest: @convention(c) (UnsafePointer<CChar>?, Int, Int32, UnsafeMutableRawPointer?) -> Void = {
    topic, topicLength, active, user in
    core(user).options.broker?.interest(in: string(topic, topicLength), active: active != 0)
}

/// What the core reports that is not the server's own failure (a client's failed TLS
/// handshake: debug), through the options' logger.
private let liveOnLog: @convention(c) (Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
    level, message, user in
    guard let message else { return }
    let logger = core(user).logger
    let text = String(cString: message)
    switch level {
    case Int32(CLIVE_LOG_WARNING.rawValue): logger.warning("\(text)")
    case Int32(CLIVE_LOG_INFO.rawValue): logger.info("\(text)")
    default: logger.debug("\(text)")
    }
}

/// An atomic count that can sit in an array.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
}


/// A failure of the server itself (binding, threads), with the core's description, e.g.
/// "address 127.0.0.1:8080 already in use".
public struct ServerError: Error, Sendable, CustomStringConvertible {
    /// The core's error code (a negative `clive_error`).
    public let code: Int
    public let description: String

    init(_ rc: Int32, description: String? = nil) {
        code = Int(rc)
        self.description = description ?? String(cString: clive_strerror(rc))
    }
}
