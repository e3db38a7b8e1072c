import CMsgPack

/// Messages as MessagePack binary frames, subprotocol `live.v1.msgpack`: an array of four,
/// `[type: str, topic: str, ref: str, body: bin]`, packed and unpacked with msgpack-c. A
/// body the server wrote as JSON (`Message.BodyEncoding.json`: presence events, replies,
/// errors) goes out as native MessagePack instead (a map, an array...), never JSON in a bin.
///
/// msgpack-c's unpacker reserves memory for a container from its header before reading
/// any element (`dd ff ff ff ff` asks for gigabytes), so a frame's shape and every length
/// are checked against the bytes actually present before msgpack-c sees it. Decoding
/// accepts `nil` for any field (empty) and `str` for the body; anything else is an error.
///
/// `type`, `topic` and `ref` must be valid UTF-8: one that is not is an error, never
/// repaired, because a repair (U+FFFD) would make different byte strings the same topic
/// and hand a client back a ref it did not send. The body is opaque bytes, carried exactly.
public struct MessagePackCodec: Codec {
    public let name: String

    public init(name: String = "live.v1.msgpack") { self.name = name }

    public func encode(_ message: Message) throws -> Frame {
        var buffer = msgpack_sbuffer()
        msgpack_sbuffer_init(&buffer)
        defer { msgpack_sbuffer_destroy(&buffer) }
        var packer = msgpack_packer()
        msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write)
        var ok = msgpack_pack_array(&packer, 4) == 0
        for field in [message.type, message.topic, message.ref] {
            var field = field
            ok = ok && field.withUTF8 { utf8 in
                msgpack_pack_str(&packer, utf8.count) == 0
                    && msgpack_pack_str_body(&packer, utf8.baseAddress, utf8.count) == 0
            }
        }
        if message.bodyEncoding == .json && !message.body.isEmpty {
            try message.body.withUnsafeBytes { try JSONToMessagePack.pack($0, into: &packer) }
        } else {
            ok = ok && message.body.withUnsafeBytes { body in
                msgpack_pack_bin(&packer, body.count) == 0
                    && msgpack_pack_bin_body(&packer, body.baseAddress, body.count) == 0
            }
        }
        guard ok else { throw CodecError.unencodable("msgpack-c could not pack the message") }
        return Frame(kind: .binary, payload: Bytes(copying: buffer.data, count: buffer.size))
    }

    public func decode(_ frame: Frame) throws -> Message {
        guard frame.kind == .binary else { throw CodecError.wrongFrameKind(expected: .binary) }
        let payload = frame.payload
        return try payload.withUnsafeBytes { raw -> Message in
            try Self.checkShape(raw)
            var unpacked = msgpack_unpacked()
            msgpack_unpacked_init(&unpacked)
            defer { msgpack_unpacked_destroy(&unpacked) }
            var offset = 0
            let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
            guard msgpack_unpack_next(&unpacked, base, raw.count, &offset) == MSGPACK_UNPACK_SUCCESS,
                offset == raw.count, unpacked.data.type == MSGPACK_OBJECT_ARRAY,
                unpacked.data.via.array.size == 4
            else { throw CodecError.malformed("not a MessagePack array of 4") }
            let items = unpacked.data.via.array.ptr!
            func text(_ i: Int) throws -> String {
                let o = items[i]
                guard o.type == MSGPACK_OBJECT_STR, o.via.str.size > 0 else { return "" }
                let bytes = UnsafeRawBufferPointer(start: o.via.str.ptr, count: Int(o.via.str.size))
                guard let s = String(validating: bytes, as: UTF8.self) else {
                    throw CodecError.malformed("\(["type", "topic", "ref"][i]) is not valid UTF-8")
                }
                return s
            }
            // The body is a view of the frame's bytes: msgpack-c points into the input.
            let o = items[3]
            var body = Bytes()
            if o.type != MSGPACK_OBJECT_BIN && o.type != MSGPACK_OBJECT_STR && o.type != MSGPACK_OBJECT_NIL {
                // a native value (what a server writes itself, see `encode`): as JSON
                var json: [UInt8] = []
                try Self.appendJSON(o, to: &json)
                return Message(type: try text(0), topic: try text(1), ref: try text(2), body: Bytes(json),
                               bodyEncoding: .json)
            }
            if o.type == MSGPACK_OBJECT_BIN || o.type == MSGPACK_OBJECT_STR {
                let ptr = o.type == MSGPACK_OBJECT_BIN ? UnsafeRawPointer(o.via.bin.ptr) : UnsafeRawPointer(o.via.str.ptr)
                let size = Int(o.type == MSGPACK_OBJECT_BIN ? o.via.bin.size : o.via.str.size)
                if let ptr, size > 0 {
                    let start = ptr - UnsafeRawPointer(base)
                    body = payload[start..<(start + size)]
                }
            }
            return Message(type: try text(0), topic: try text(1), ref: try text(2), body: body)
        }
    }

    /// A native MessagePack value as JSON text (maps need string keys; no bin or ext
    /// inside, no NaN or infinity), for a body that came as one.
    static func appendJSON(_ o: msgpack_object, to out: inout [UInt8]) throws {
        switch o.type {
        case MSGPACK_OBJECT_NIL: out.append(contentsOf: "null".utf8)
        case MSGPACK_OBJECT_BOOLEAN: out.append(contentsOf: (o.via.boolean ? "true" : "false").utf8)
        case MSGPACK_OBJECT_POSITIVE_INTEGER: out.append(contentsOf: String(o.via.u64).utf8)
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: out.append(contentsOf: String(o.via.i64).utf8)
        case MSGPACK_OBJECT_FLOAT32, MSGPACK_OBJECT_FLOAT64:
            guard o.via.f64.isFinite else { throw CodecError.malformed("a body number JSON cannot carry") }
            out.append(contentsOf: String(o.via.f64).utf8)
        case MSGPACK_OBJECT_STR:
            let bytes = UnsafeRawBufferPointer(start: o.via.str.ptr, count: Int(o.via.str.size))
            guard let s = String(validating: bytes, as: UTF8.self) else {
                throw CodecError.malformed("a string in the body is not valid UTF-8")
            }
            JSONCodec.appendQuoted(s, to: &out)
        case MSGPACK_OBJECT_ARRAY:
            out.append(UInt8(ascii: "["))
            for k in 0..<Int(o.via.array.size) {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                try appendJSON(o.via.array.ptr[k], to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case MSGPACK_OBJECT_MAP:
            out.append(UInt8(ascii: "{"))
            for k in 0..<Int(o.via.map.size) {
                let kv = o.via.map.ptr[k]
                guard kv.key.type == MSGPACK_OBJECT_STR else { throw CodecError.malformed("a body map key is not a string") }
                if k > 0 { out.append(UInt8(ascii: ",")) }
                try appendJSON(kv.key, to: &out)
                out.append(UInt8(ascii: ":"))
                try appendJSON(kv.val, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        default:
            throw CodecError.malformed("a body value JSON cannot carry (bin or ext inside a map or array)")
        }
    }

    /// Checks the frame is exactly `[str|nil, str|nil, str|nil, body]` with every length
    /// and every count within the bytes present, before msgpack-c allocates anything for
    /// it (it reserves a container's elements from its header). The body is bin, str or nil
    /// (opaque bytes), or a native value: maps, arrays, strings, numbers, booleans, nil,
    /// nested at most 32 deep.
    static func checkShape(_ raw: UnsafeRawBufferPointer) throws {
        var i = 0
        func byte() throws -> Int {
            guard i < raw.count else { throw CodecError.malformed("truncated MessagePack") }
            defer { i += 1 }
            return Int(raw[i])
        }
        func length(_ bytes: Int) throws -> Int {
            var n = 0
            for _ in 0..<bytes { n = n << 8 | (try byte()) }
            return n
        }
        func skip(_ n: Int) throws {
            guard n <= raw.count - i else { throw CodecError.malformed("length beyond the frame") }
            i += n
        }
        /// n more values, each at least one byte: a count beyond the bytes left is refused
        /// before anything is reserved for it.
        func skipValues(_ n: Int, depth: Int) throws {
            guard n <= raw.count - i else { throw CodecError.malformed("a count beyond the frame") }
            for _ in 0..<n { try skipValue(depth: depth) }
        }
        func skipValue(depth: Int) throws {
            guard depth < 32 else { throw CodecError.malformed("body nested too deeply") }
            let tag = try byte()
            switch tag {
            case 0x00...0x7f, 0xe0...0xff, 0xc0, 0xc2, 0xc3: return
            case 0xcc, 0xd0: try skip(1)
            case 0xcd, 0xd1: try skip(2)
            case 0xce, 0xd2, 0xca: try skip(4)
            case 0xcf, 0xd3, 0xcb: try skip(8)
            case 0xa0...0xbf: try skip(tag & 0x1f)
            case 0xd9: try skip(try length(1))
            case 0xda: try skip(try length(2))
            case 0xdb: try skip(try length(4))
            case 0x90...0x9f: try skipValues(tag & 0x0f, depth: depth + 1)
            case 0xdc: try skipValues(try length(2), depth: depth + 1)
            case 0xdd: try skipValues(try length(4), depth: depth + 1)
            case 0x80...0x8f: try skipValues(2 * (tag & 0x0f), depth: depth + 1)
            case 0xde: try skipValues(2 * (try length(2)), depth: depth + 1)
            case 0xdf: try skipValues(2 * (try length(4)), depth: depth + 1)
            default: throw CodecError.malformed("a body value JSON cannot carry (bin or ext inside, or a reserved byte)")
            }
        }
        let head = try byte()
        let count: Int
        switch head {
        case 0x90...0x9f: count = head & 0x0f
        case 0xdc: count = try length(2)
        case 0xdd: count = try length(4)
        default: throw CodecError.malformed("not a MessagePack array")
        }
        guard count == 4 else { throw CodecError.malformed("expected an array of 4, got \(count)") }
        for field in 0..<4 {
            let tag = try byte()
            let size: Int
            switch tag {
            case 0xc0: size = 0
            case 0xa0...0xbf: size = tag & 0x1f
            case 0xd9: size = try length(1)
            case 0xda: size = try length(2)
            case 0xdb: size = try length(4)
            case 0xc4 where field == 3: size = try length(1)
            case 0xc5 where field == 3: size = try length(2)
            case 0xc6 where field == 3: size = try length(4)
            case _ where field == 3:
                i -= 1
                try skipValue(depth: 0)
                size = 0
            default:
                throw CodecError.malformed(field == 3 ? "body must be bin, str or nil" : "field \(field) must be a string")
            }
            guard size <= raw.count - i else { throw CodecError.malformed("length beyond the frame") }
            i += size
        }
        guard i == raw.count else { throw CodecError.malformed("trailing bytes") }
    }
}
