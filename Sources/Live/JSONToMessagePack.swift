import CMsgPack

/// Renders one JSON value as native MessagePack (maps, arrays, str, integers, floats,
/// booleans, nil), for the bodies the server writes itself as JSON (presence events, `who`
/// and `count` replies, errors: `Message.BodyEncoding.json`), so that a MessagePack client
/// gets maps and arrays and never needs a JSON parser.
///
/// MessagePack puts a container's element count before its elements, so each container is
/// counted with a scan ahead first: bodies the server writes are small and shallow.
struct JSONToMessagePack {
    private var scanner: JSONScanner

    /// Packs the JSON value in `json` (one value, whitespace around it allowed).
    static func pack(_ json: UnsafeRawBufferPointer, into packer: inout msgpack_packer) throws {
        var t = JSONToMessagePack(scanner: JSONScanner(json))
        try t.value(&packer, depth: 0)
        t.scanner.skipWhitespace()
        guard t.scanner.atEnd else { throw t.scanner.fail("trailing bytes after the body") }
    }

    private mutating func value(_ p: inout msgpack_packer, depth: Int) throws {
        guard depth < JSONScanner.maxDepth else { throw scanner.fail("nested too deeply") }
        scanner.skipWhitespace()
        guard let b = scanner.peek else { throw scanner.fail("missing value") }
        var ok = true
        switch b {
        case UInt8(ascii: "\""):
            var s = try scanner.readString()
            ok = s.withUTF8 { msgpack_pack_str(&p, $0.count) == 0 && msgpack_pack_str_body(&p, $0.baseAddress, $0.count) == 0 }
        case UInt8(ascii: "{"):
            ok = msgpack_pack_map(&p, try count(closing: UInt8(ascii: "}"), pairs: true)) == 0
            scanner.index += 1
            var first = true
            while true {
                scanner.skipWhitespace()
                if scanner.peek == UInt8(ascii: "}") { break }
                if !first { try scanner.expect(UInt8(ascii: ",")); scanner.skipWhitespace() }
                first = false
                var key = try scanner.readString()
                ok = ok && key.withUTF8 { msgpack_pack_str(&p, $0.count) == 0 && msgpack_pack_str_body(&p, $0.baseAddress, $0.count) == 0 }
                scanner.skipWhitespace()
                try scanner.expect(UInt8(ascii: ":"))
                try value(&p, depth: depth + 1)
            }
            scanner.index += 1
        case UInt8(ascii: "["):
            ok = msgpack_pack_array(&p, try count(closing: UInt8(ascii: "]"), pairs: false)) == 0
            scanner.index += 1
            var first = true
            while true {
                scanner.skipWhitespace()
                if scanner.peek == UInt8(ascii: "]") { break }
                if !first { try scanner.expect(UInt8(ascii: ",")) }
                first = false
                try value(&p, depth: depth + 1)
            }
            scanner.index += 1
        case UInt8(ascii: "t"):
            try scanner.skipLiteral("true")
            ok = msgpack_pack_true(&p) == 0
        case UInt8(ascii: "f"):
            try scanner.skipLiteral("false")
            ok = msgpack_pack_false(&p) == 0
        case UInt8(ascii: "n"):
            try scanner.skipLiteral("null")
            ok = msgpack_pack_nil(&p) == 0
        default:
            let start = scanner.index
            try scanner.skipNumber()
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: scanner.bytes[start..<scanner.index]), as: UTF8.self)
            if let i = Int64(text) {
                ok = msgpack_pack_int64(&p, i) == 0
            } else if let u = UInt64(text) {  // above Int64.max: MessagePack's uint 64
                ok = msgpack_pack_uint64(&p, u) == 0
            } else if let d = Double(text) {
                ok = msgpack_pack_double(&p, d) == 0
            } else {
                throw scanner.fail("bad number")
            }
        }
        guard ok else { throw CodecError.unencodable("msgpack-c could not pack the body") }
    }

    /// The elements (or key/value pairs) of the container starting at the scanner, which
    /// is left where it was.
    private func count(closing: UInt8, pairs: Bool) throws -> Int {
        var s = scanner
        s.index += 1
        s.skipWhitespace()
        if s.peek == closing { return 0 }
        var n = 0
        while true {
            s.skipWhitespace()
            if pairs {
                try s.skipString()
                s.skipWhitespace()
                try s.expect(UInt8(ascii: ":"))
            }
            try s.skipValue()
            n += 1
            s.skipWhitespace()
            if s.peek == UInt8(ascii: ",") {
                s.index += 1
                continue
            }
            try s.expect(closing)
            return n
        }
    }
}
