/// Messages as JSON text frames, subprotocol `live.v1.json`:
/// `{"type": "...", "topic": "...", "ref": "...", "body": <any JSON value>}`.
///
/// Only `type` is required; absent keys mean empty and unknown keys are ignored. The body
/// is carried as raw JSON: decoding hands back the exact bytes of the value as received,
/// and encoding splices the body's bytes in verbatim after checking they are one JSON
/// value. Nothing is re-serialised. Bodies that are not JSON need the MessagePack codec.
public struct JSONCodec: Codec {
    public let name: String

    public init(name: String = "live.v1.json") { self.name = name }

    public func encode(_ message: Message) throws -> Frame {
        if !message.body.isEmpty {
            guard Self.isOneJSONValue(message.body) else {
                throw CodecError.unencodable(
                    "the JSON codec carries JSON bodies only; send other bytes with MessagePackCodec")
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(32 + message.type.utf8.count + message.topic.utf8.count
            + message.ref.utf8.count + message.body.count)
        out.append(contentsOf: #"{"type":"#.utf8)
        Self.appendQuoted(message.type, to: &out)
        if !message.topic.isEmpty {
            out.append(contentsOf: #","topic":"#.utf8)
            Self.appendQuoted(message.topic, to: &out)
        }
        if !message.ref.isEmpty {
            out.append(contentsOf: #","ref":"#.utf8)
            Self.appendQuoted(message.ref, to: &out)
        }
        if !message.body.isEmpty {
            out.append(contentsOf: #","body":"#.utf8)
            message.body.withUnsafeBytes { out.append(contentsOf: $0) }
        }
        out.append(UInt8(ascii: "}"))
        return Frame(kind: .text, payload: Bytes(out))
    }

    public func decode(_ frame: Frame) throws -> Message {
        guard frame.kind == .text else { throw CodecError.wrongFrameKind(expected: .text) }
        let payload = frame.payload
        return try payload.withUnsafeBytes { raw -> Message in
            var s = JSONScanner(raw)
            var message = Message(type: "")
            var sawType = false
            s.skipWhitespace()
            try s.expect(UInt8(ascii: "{"))
            s.skipWhitespace()
            if s.peek == UInt8(ascii: "}") {
                s.index += 1
            } else {
                while true {
                    s.skipWhitespace()
                    let key = try s.readString()
                    s.skipWhitespace()
                    try s.expect(UInt8(ascii: ":"))
                    s.skipWhitespace()
                    switch key {
                    case "type":
                        message.type = try s.readString()
                        sawType = true
                    case "topic":
                        message.topic = try readOptionalString(&s)
                    case "ref":
                        message.ref = try readOptionalString(&s)
                    case "body":
                        let start = s.index
                        try s.skipValue(depth: 1)
                        message.body = payload[start..<s.index]
                    default:
                        try s.skipValue(depth: 1)
                    }
                    s.skipWhitespace()
                    if s.peek == UInt8(ascii: ",") {
                        s.index += 1
                        continue
                    }
                    try s.expect(UInt8(ascii: "}"))
                    break
                }
            }
            s.skipWhitespace()
            guard s.atEnd else { throw s.fail("trailing bytes") }
            guard sawType else { throw CodecError.malformed("missing \"type\"") }
            return message
        }
    }

    /// `null` reads as empty, like an absent key.
    private func readOptionalString(_ s: inout JSONScanner) throws -> String {
        if s.peek == UInt8(ascii: "n") {
            try s.skipValue(depth: 1)
            return ""
        }
        return try s.readString()
    }

    /// Whether the bytes are exactly one JSON value (surrounding whitespace allowed).
    static func isOneJSONValue(_ bytes: Bytes) -> Bool {
        guard validUTF8(bytes) else { return false }
        return bytes.withUnsafeBytes { raw in
            var s = JSONScanner(raw)
            do {
                try s.skipValue()
                s.skipWhitespace()
                return s.atEnd
            } catch {
                return false
            }
        }
    }

    static func appendQuoted(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Most names need no escaping: copy them whole.
        if !string.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out.append(contentsOf: string.utf8)
            out.append(UInt8(ascii: "\""))
            return
        }
        for b in string.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0x0A: out.append(contentsOf: #"\n"#.utf8)
            case 0x0D: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 15)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
