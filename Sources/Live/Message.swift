/// One message on the wire: what a codec decodes from a frame and encodes into one.
///
/// `Live` gives the fields no meaning; conventions such as "join" or "publish" belong to the
/// layer above (see `LiveRooms`). `type`, `topic` and `ref` are empty when absent.
public struct Message: Sendable, Hashable {
    public var type: String
    public var topic: String
    public var ref: String
    /// Opaque bytes. Under the JSON codec they must be one JSON value (sent verbatim).
    public var body: Bytes
    /// How codecs carry `body` (see `BodyEncoding`). Decoded messages are `.opaque`.
    public var bodyEncoding: BodyEncoding

    public init(type: String, topic: String = "", ref: String = "", body: Bytes = Bytes(),
                bodyEncoding: BodyEncoding = .opaque) {
        self.type = type
        self.topic = topic
        self.ref = ref
        self.body = body
        self.bodyEncoding = bodyEncoding
    }

    /// What the body's bytes are, for the codecs.
    public enum BodyEncoding: Sendable, Hashable {
        /// Bytes to carry as they are: a JSON value under the JSON codec, `bin` under
        /// MessagePack. What clients publish.
        case opaque
        /// One JSON value that a codec with a native form for such values renders natively:
        /// the JSON codec splices it in as usual, MessagePack packs maps, arrays, strings
        /// and numbers, so a MessagePack client never needs a JSON parser. What the server
        /// writes itself: presence events, `who` and `count` replies, errors.
        case json
    }
}
