import CLive
import Synchronization

/// One WebSocket connection that `onAuth` accepted.
///
/// Every method may be called from any thread. Handlers receive the same `Session` object
/// for the session's whole life, so it can be used as a dictionary key.
public final class Session: @unchecked Sendable, Hashable, Identifiable, CustomStringConvertible {
    public typealias ID = String

    /// Unique within the process and never reused.
    public let id: ID
    /// What `onAuth` returned.
    public let meta: Meta
    /// The subprotocol agreed in the handshake, which names the session's codec.
    public var subprotocol: String? { clive_session_subprotocol(handle) >= 0 ? codec.name : nil }
    /// The codec this session's frames are decoded and encoded with.
    public var codec: any Codec { codecs[Int(slot)] }

    // Every idle connection holds one of these for its whole life, so its stored fields are
    // kept few and small (docs/CORE.md, "Memory per idle session"): the codec is the
    // server's shared table (one pointer) and a slot, not an existential of its own, and
    // the subprotocol is derived from them.

    // The C session, retained for as long as this object lives: @unchecked Sendable is
    // sound because every clive_session function used here may be called from any thread.
    let handle: OpaquePointer
    /// Weak: an app's handlers often keep sessions (a dictionary of who is connected), and
    /// the handlers live in the server's options, so a strong reference here would keep a
    /// dropped server alive through its own sessions.
    weak var core: ServerCore?
    /// The server's codec table (its storage is shared, not copied).
    private let codecs: [any Codec]
    let decodeFailure = Mutex<String?>(nil)
    /// The client's address, for logs.
    let remoteAddress: String
    /// The core's codec slot (it has at most 255 codecs: a uint8_t in the C session).
    private let slot: UInt8
    var codecSlot: Int { Int(slot) }

    init(handle: OpaquePointer, core: ServerCore, meta: Meta, codecs: [any Codec], codecSlot: Int,
         remoteAddress: String = "") {
        self.remoteAddress = remoteAddress
        clive_session_retain(handle)
        self.handle = handle
        self.core = core
        self.id = core.publicID(clive_session_id(handle))
        self.meta = meta
        self.codecs = codecs
        self.slot = UInt8(codecSlot)
    }

    deinit { clive_session_release(handle) }

    /// The publish/subscribe of this session's server (the same as `server.pubsub`), so
    /// that handlers need no reference to the server. Once the server is gone, its calls
    /// throw `SessionError.closed`.
    public var pubsub: InProcessPubSub { InProcessPubSub(core: core) }

    /// The presence of this session's server (the same as `server.presence`); empty once
    /// the server is gone.
    public var presence: Presence { Presence(core: core) }

    /// Whether the session is still open (a snapshot).
    public var isOpen: Bool { clive_session_is_open(handle) != 0 }

    /// Encodes the message with the session's codec and queues it. Never blocks.
    /// - Throws: `SessionError.closed` after the session closed,
    ///   `SessionError.queueOverflow` once its queue has overflowed (the session is then
    ///   closing with 4008), or the codec's error.
    public func send(_ message: Message) throws {
        let frame = try codec.encode(message)
        try send(frame)
    }

    /// Queues one frame as it is, bypassing the codec.
    public func send(_ frame: Frame) throws {
        guard let cframe = makeCFrame(frame) else { throw SessionError.outOfMemory }
        defer { clive_frame_release(cframe) }
        try SessionError.check(clive_session_send(handle, cframe))
    }

    /// Starts the closing handshake. `onClose` then reports `.serverClosed(code:reason:)`.
    /// Closing a session that is already closed or closing does nothing.
    /// - Parameters:
    ///   - code: 1000, 1001, 1003, 1007-1014 or 3000-4999 (the codes RFC 6455 and the IANA
    ///     registry let a server send; 1005, 1006 and 1015 only report what happened).
    ///   - reason: at most 123 bytes of UTF-8 (what fits in a close frame).
    /// - Throws: `SessionError.invalidCloseCode` or `SessionError.closeReasonTooLong`, and
    ///   then the session is not closed: a wrong argument is a bug to see, not a close
    ///   with another code.
    public func close(code: UInt16 = 1000, reason: String = "") throws {
        guard Session.isSendableCloseCode(code) else { throw SessionError.invalidCloseCode(code) }
        let bytes = reason.utf8.count
        guard bytes <= 123 else { throw SessionError.closeReasonTooLong(bytes: bytes) }
        closeUnchecked(code: code, reason: reason)
    }

    /// For the library's own closes, whose code and reason are known to be valid.
    func closeUnchecked(code: UInt16, reason: String) {
        var reason = reason
        _ = reason.withUTF8 { clive_session_close(handle, code, $0.baseAddress, $0.count) }
    }

    static func isSendableCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000, 1001, 1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }

    public static func == (a: Session, b: Session) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
    public var description: String { "Session(\(id))" }
}

/// Why a session (or the publish/subscribe it belongs to) refused a call.
public enum SessionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The session is closed or closing, or its server is shutting down or gone.
    case closed
    /// The session's send queue overflowed; it is closing with 4008.
    case queueOverflow
    /// A topic was empty or longer than `Options.maxTopicLength` bytes.
    case invalidTopic
    /// A subscribe would exceed `Options.maxTopicsPerSession` for this session or
    /// `Options.maxTopics` for the server; the session keeps its other topics.
    case tooManyTopics
    /// `Session.close` was given a code a server may not send.
    case invalidCloseCode(UInt16)
    /// `Session.close` was given a reason longer than a close frame holds (123 bytes).
    case closeReasonTooLong(bytes: Int)
    case outOfMemory

    static func check(_ rc: Int32) throws {
        switch rc {
        case CLIVE_OK.rawValue: return
        case CLIVE_EOVERFLOW.rawValue: throw SessionError.queueOverflow
        case CLIVE_EINVAL.rawValue: throw SessionError.invalidTopic
        case CLIVE_ELIMIT.rawValue: throw SessionError.tooManyTopics
        case CLIVE_ENOMEM.rawValue: throw SessionError.outOfMemory
        default: throw SessionError.closed
        }
    }

    public var description: String {
        switch self {
        case .closed: return "the session is closed (or its server is shutting down)"
        case .queueOverflow: return "the session's send queue overflowed; it is closing (4008)"
        case .invalidTopic: return "a topic must be 1 to Options.maxTopicLength bytes (255 unless configured)"
        case .tooManyTopics:
            return "too many topics: Options.maxTopicsPerSession (for the session) or Options.maxTopics (for the server) reached"
        case .invalidCloseCode(let code):
            return "close code \(code) may not be sent (use 1000, 1001, 1003, 1007-1014 or 3000-4999)"
        case .closeReasonTooLong(let bytes): return "a close reason is at most 123 bytes of UTF-8, got \(bytes)"
        case .outOfMemory: return "out of memory"
        }
    }
}

/// Builds the core's shared frame for a codec's output (one copy, into the frame).
func makeCFrame(_ frame: Frame) -> OpaquePointer? {
    frame.payload.withUnsafeBytes { clive_frame_new(frame.kind == .binary ? 1 : 0, $0.baseAddress, $0.count) }
}
