/// One frame is one message, for apps that bring their own framing: the body is the
/// payload and the type is `"text"` or `"binary"`. Topic and ref are not carried.
public struct RawCodec: Codec {
    public let name: String

    public init(name: String = "live.v1.raw") { self.name = name }

    public func encode(_ message: Message) throws -> Frame {
        if message.type == "binary" { return Frame(kind: .binary, payload: message.body) }
        guard validUTF8(message.body) else {
            throw CodecError.unencodable("a text frame needs UTF-8; use type \"binary\"")
        }
        return Frame(kind: .text, payload: message.body)
    }

    public func decode(_ frame: Frame) throws -> Message {
        Message(type: frame.kind == .text ? "text" : "binary", body: frame.payload)
    }
}

func validUTF8(_ bytes: Bytes) -> Bool {
    bytes.withUnsafeBytes { String(validating: $0.bindMemory(to: UInt8.self), as: UTF8.self) != nil }
}
