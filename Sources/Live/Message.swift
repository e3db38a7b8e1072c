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

    public init(type: String, topic: String = "", ref: String = "", body: Bytes = Bytes()) {
        self.type = type
        self.topic = topic
        self.ref = ref
        self.body = body
    }
}
