import CLive
import Foundation
import HTTPTypes
import Logging
import Synchronization

/// The bridge between the C core and the Swift handlers: owns the `clive_server`, turns
/// its callbacks into `Request`, `Session`, `Message` and `CloseReason`, and encodes
/// publishes once per codec in use.
///
/// A `Session` object is attached to its C session as a retained user pointer just before
/// the upgrade is accepted, and detached (exactly once, with `clive_session_take_user`) by
/// `on_close`, which is where the C core guarantees the last callback.
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
    /// Public presence values (`PresenceOptions.publicField`) of open sessions, by id.
    let publicValues = Mutex<[UInt64: String]>([:])
    private let state = Mutex(State())

    private struct State {
        var started = false
        var stopped = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    init(options: Options) throws {
        self.options = options
        codecs = options.codecTable
        defaultSlot = options.defaultCodecSlot
        logger = options.logger
        sessionsPerSlot = codecs.map { _ in Counter() }
        var server: OpaquePointer?
        let rc = options.withCOptions { c in
            c.callbacks.on_request = liveOnRequest
            c.callbacks.on_message = liveOnMessage
            c.callbacks.on_close = liveOnClose
            if options.presence != nil { c.callbacks.on_presence = liveOnPresence }
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
        guard (0...65535).contains(port) else { throw ServerError(CLIVE_EINVAL.rawValue) }
        let rc = clive_server_listen(handle, host, UInt16(port))
        guard rc == CLIVE_OK.rawValue else { throw ServerError(rc) }
    }

    var port: Int { Int(clive_server_port(handle)) }

    func start() throws {
        try state.withLock { s in
            guard !s.started else { throw ServerError(CLIVE_ESTATE.rawValue) }
            s.started = true
        }
        setCallbackContext()
        let rc = clive_server_start(handle)
        if rc == CLIVE_ECLOSED.rawValue {  // shut down before it started: it is stopped
            state.withLock { $0.stopped = true }
        }
        guard rc == CLIVE_OK.rawValue else { throw ServerError(rc) }
        // One thread parks in clive_server_wait and wakes the async waiters when the loops
        // have stopped; it keeps this object alive until then.
        let thread = Thread { [self] in
            clive_server_wait(handle)
            let waiters = state.withLock { s in
                s.stopped = true
                defer { s.waiters = [] }
                return s.waiters
            }
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

    func shutdown() { clive_server_shutdown(handle) }

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

    /// The core's subprotocol list is the codec table, so its index is the slot.
    func codecSlot(forSubprotocol index: Int32) -> Int {
        index >= 0 && Int(index) < codecs.count ? Int(index) : defaultSlot
    }

    /// Attaches a `Session` and accepts the upgrade. Any thread.
    func accept(_ handle: OpaquePointer, meta: Meta, slot: Int) {
        let session = Session(handle: handle, core: self, meta: meta, codec: codecs[slot], codecSlot: slot)
        if let field = options.presence?.publicField, let value = meta[field] {
            publicValues.withLock { $0[clive_session_id(handle)] = value.description }
        }
        sessionsPerSlot[slot].value.add(1, ordering: .relaxed)
        clive_session_set_user(handle, Unmanaged.passRetained(session).toOpaque())
        if clive_session_accept(handle, UInt32(slot)) != CLIVE_OK.rawValue {
            // Too late (the handshake timed out): detach unless on_close already did.
            if let p = clive_session_take_user(handle) {
                Unmanaged<Session>.fromOpaque(p).release()
                sessionsPerSlot[slot].value.subtract(1, ordering: .relaxed)
            }
        }
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

    func publish(_ message: Message, to topic: String) throws {
        var frames = [OpaquePointer?](repeating: nil, count: codecs.count)
        defer { frames.forEach { if let f = $0 { clive_frame_release(f) } } }
        for slot in codecs.indices where sessionsPerSlot[slot].value.load(ordering: .relaxed) > 0 {
            do {
                frames[slot] = makeCFrame(try codecs[slot].encode(message))
            } catch {
                skippedEncodes.add(1, ordering: .relaxed)
                logger.debug("publish skipped for codec", metadata: [
                    "codec": "\(codecs[slot].name)", "topic": "\(topic)", "error": "\(error)",
                ])
            }
        }
        var topic = topic
        let rc = topic.withUTF8 { t in
            frames.withUnsafeBufferPointer { clive_publish(handle, t.baseAddress, t.count, $0.baseAddress, $0.count) }
        }
        if rc == CLIVE_EINVAL.rawValue { throw SessionError.invalidTopic }
        if rc != CLIVE_OK.rawValue { throw ServerError(rc) }
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
    let req = makeRequest(request, core: core)
    if request.pointee.is_upgrade != 0 {
        let slot = core.codecSlot(forSubprotocol: request.pointee.subprotocol)
        guard let onAuth = core.options.onAuth else {
            core.accept(handle, meta: Meta(), slot: slot)
            return
        }
        clive_session_retain(handle)
        let pending = SendableHandle(handle)
        Task {
            defer { clive_session_release(pending.handle) }
            do {
                let meta = try await onAuth(req)
                core.accept(pending.handle, meta: meta, slot: slot)
            } catch let rejection as Rejection {
                core.respond(pending.handle, status: rejection.status.code, body: Bytes(rejection.body))
            } catch {
                core.logger.debug("upgrade refused by onAuth", metadata: ["error": "\(error)"])
                core.respond(pending.handle, status: 401, body: Bytes())
            }
        }
    } else if let onHTTP = core.options.onHTTP {
        clive_session_retain(handle)
        let pending = SendableHandle(handle)
        Task {
            defer { clive_session_release(pending.handle) }
            let response = await onHTTP(req)
            core.respond(pending.handle, status: response.status.code, headers: response.headers,
                         body: response.body)
        }
    } else {
        core.respond(handle, status: 426, body: Bytes("this endpoint speaks WebSocket\n"))
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
        session.close(code: wrongKind ? 1003 : 1007, reason: wrongKind ? "wrong frame kind" : "cannot decode")
        return
    }
    core(user).options.onMessage?(session, message)
}

private let liveOnClose: @convention(c) (OpaquePointer?, clive_close_kind, Int32, UnsafePointer<CChar>?, Int, UnsafeMutableRawPointer?) -> Void = {
    handle, kind, code, reason, reasonLength, user in
    guard let handle, let p = clive_session_take_user(handle) else { return }
    let core = core(user)
    let session = Unmanaged<Session>.fromOpaque(p).takeRetainedValue()
    core.sessionsPerSlot[session.codecSlot].value.subtract(1, ordering: .relaxed)
    if core.options.presence?.publicField != nil {
        // leave events list ids only, so the value is not needed any more
        _ = core.publicValues.withLock { $0.removeValue(forKey: clive_session_id(handle)) }
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
    core.options.onClose?(session, why)
}

private let liveOnPresence: @convention(c) (UnsafePointer<CChar>?, Int, UnsafePointer<UInt64>?, Int, UnsafePointer<UInt64>?, Int, UnsafeMutableRawPointer?) -> Void = {
    topic, topicLength, joined, joinedCount, left, leftCount, user in
    core(user).presenceChanged(
        topic: string(topic, topicLength),
        joined: joinedCount > 0 ? Array(UnsafeBufferPointer(start: joined, count: joinedCount)) : [],
        left: leftCount > 0 ? Array(UnsafeBufferPointer(start: left, count: leftCount)) : [])
}

/// An atomic count that can sit in an array.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

/// A C session handle moved into a task; retained by the code that creates it.
private struct SendableHandle: @unchecked Sendable {
    let handle: OpaquePointer
    init(_ handle: OpaquePointer) { self.handle = handle }
}

/// A failure of the server itself (binding, threads), with the core's description.
public struct ServerError: Error, Sendable, CustomStringConvertible {
    public let code: Int
    public let description: String

    init(_ rc: Int32) {
        code = Int(rc)
        description = String(cString: clive_strerror(rc))
    }
}
