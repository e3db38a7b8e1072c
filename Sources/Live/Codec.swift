/// The bytes of one WebSocket frame and how they are sent.
public struct Frame: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case text
        case binary
    }

    public var kind: Kind
    public var payload: Bytes

    public init(kind: Kind, payload: Bytes) {
        self.kind = kind
        self.payload = payload
    }
}

/// Turns messages into frames and back. One codec per session, chosen in the handshake by
/// its `name`, which is the WebSocket subprotocol (`Sec-WebSocket-Protocol`).
///
/// Codecs are called from many threads at once and must not block: `decode` runs on the
/// session's event loop for every message received, `encode` on the thread that sends or
/// publishes (once per codec in use for a publish, not once per subscriber).
public protocol Codec: Sendable {
    /// The WebSocket subprotocol, e.g. `live.v1.json`.
    var name: String { get }
    /// The frame for a message. Throws when the message cannot be carried by this codec
    /// (a published message is then skipped for this codec's subscribers).
    func encode(_ message: Message) throws -> Frame
    /// The message in one frame. Throws `CodecError` on anything malformed; the session is
    /// then closed with 1007 (1003 when the frame is of the wrong kind).
    func decode(_ frame: Frame) throws -> Message
}

/// Why a codec refused a frame or a message.
public enum CodecError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The frame kind is not the one this codec speaks (closes with 1003).
    case wrongFrameKind(expected: Frame.Kind)
    /// The frame is not a well-formed message of this codec (closes with 1007).
    case malformed(String)
    /// The message cannot be encoded by this codec.
    case unencodable(String)

    public var description: String {
        switch self {
        case .wrongFrameKind(let k): return "wrong frame kind: this codec expects \(k) frames"
        case .malformed(let why): return "malformed frame: \(why)"
        case .unencodable(let why): return "cannot encode: \(why)"
        }
    }
}
