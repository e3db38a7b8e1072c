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

/// Whether the bytes are UTF-8. ASCII, the common case for JSON, is checked eight bytes at a
/// time without building anything; only text with other characters goes through the
/// standard library's validation.
func validUTF8(_ bytes: Bytes) -> Bool {
    bytes.withUnsafeBytes { raw in
        var i = 0
        while i + 8 <= raw.count {
            if raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { break }
            i += 8
        }
        while i < raw.count && raw[i] < 0x80 { i += 1 }
        if i == raw.count { return true }
        return String(validating: raw.bindMemory(to: UInt8.self), as: UTF8.self) != nil
    }
}
