// The codecs on their own, without sockets.

import Live
import Testing

private func text(_ s: String) -> Frame { Frame(kind: .text, payload: Bytes(s)) }
private func binary(_ b: [UInt8]) -> Frame { Frame(kind: .binary, payload: Bytes(b)) }

private enum ErrorKind {
    case malformed, unencodable, wrongFrameKind(Frame.Kind)
}

private func expectCodecError(
    _ kind: ErrorKind, _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected a CodecError, nothing was thrown. \(comment.map { "\($0)" } ?? "")",
                     sourceLocation: sourceLocation)
    } catch let error as CodecError {
        switch (kind, error) {
        case (.malformed, .malformed), (.unencodable, .unencodable): break
        case (.wrongFrameKind(let a), .wrongFrameKind(let b)) where a == b: break
        default:
            Issue.record("wrong CodecError: \(error). \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("not a CodecError: \(error). \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
    }
}

@Suite struct JSONCodecTests {
    let codec = JSONCodec()

    @Test func name() {
        #expect(codec.name == "live.v1.json")
        #expect(JSONCodec(name: "other").name == "other")
    }

    @Test(arguments: [
        Message(type: "a"),
        Message(type: ""),
        Message(type: "join", topic: "room/é", ref: "r-1", body: #"{"a":[1,true,null,"x"]}"#),
        Message(type: "quote\" back\\slash\nnew\ttab\r\u{1}\u{1f}é😀", topic: "t\"", ref: "\\", body: #""a string""#),
        Message(type: "num", body: "-12.5e-3"),
        Message(type: "ws", body: "[ 1 , 2 ]"),
    ])
    func roundTrip(_ message: Message) throws {
        let frame = try codec.encode(message)
        #expect(frame.kind == .text)
        #expect(try codec.decode(frame) == message)
    }

    @Test func encodesCompactlyAndOmitsEmptyFields() throws {
        let full = try codec.encode(Message(type: "a", topic: "t", ref: "r", body: "[1]"))
        #expect(full.payload.string == #"{"type":"a","topic":"t","ref":"r","body":[1]}"#)
        let bare = try codec.encode(Message(type: "a"))
        #expect(bare.payload.string == #"{"type":"a"}"#)
        let control = try codec.encode(Message(type: "\u{1}\n"))
        #expect(control.payload.string == #"{"type":"\u0001\n"}"#)
        // a body with whitespace around the value goes out verbatim and comes back without it
        let spaced = try codec.encode(Message(type: "a", body: " [ 1 ] "))
        #expect(spaced.payload.string == #"{"type":"a","body": [ 1 ] }"#)
        #expect(try codec.decode(spaced).body.string == "[ 1 ]")
    }

    @Test func absentKeysAreEmpty() throws {
        let m = try codec.decode(text(#"{"type":"a"}"#))
        #expect(m == Message(type: "a", topic: "", ref: "", body: Bytes()))
        #expect(m.body.isEmpty)
        let nulls = try codec.decode(text(#"{"type":"a","topic":null,"ref":null}"#))
        #expect(nulls == Message(type: "a"))
    }

    @Test func unknownKeysAreIgnored() throws {
        let m = try codec.decode(text(
            #" { "x": {"type": "no", "body": [1, {"topic": "no"}]}, "type" : "a", "n": -1.5E+2, "t": true, "f": false, "z": null, "topic": "t" } "#))
        #expect(m == Message(type: "a", topic: "t"))
    }

    @Test func typeIsRequired() {
        for bad in [#"{}"#, #"{"topic":"t","body":1}"#, #"{"type":null}"#, #"{"type":1}"#, #"{"type":["a"]}"#] {
            expectCodecError(.malformed, "\(bad)") { _ = try codec.decode(text(bad)) }
        }
    }

    @Test func bodyIsTheExactBytesOfTheValue() throws {
        let input = #"{"type":"a","body": {"x" : [1, 2.5e3, "é\u00e9"]} }"#
        let m = try codec.decode(text(input))
        #expect(m.type == "a")
        #expect(Array(m.body) == Array(#"{"x" : [1, 2.5e3, "é\u00e9"]}"#.utf8))
        // and it goes out again verbatim
        #expect(try codec.encode(m).payload.string == #"{"type":"a","body":{"x" : [1, 2.5e3, "é\u00e9"]}}"#)

        for (json, body) in [
            (#"{"type":"a","body":"s\"t"}"#, #""s\"t""#),
            (#"{"type":"a","body":0}"#, "0"),
            (#"{"type":"a","body":-0.5E-7 }"#, "-0.5E-7"),
            (#"{"type":"a","body":true,"topic":"t"}"#, "true"),
            (#"{"body":[ ],"type":"a"}"#, "[ ]"),
        ] {
            #expect(try codec.decode(text(json)).body.string == body, "\(json)")
        }
    }

    @Test func stringEscapesDecode() throws {
        let m = try codec.decode(text(#"{"type":"a\nb\u00e9\ud83d\ude00\"\\\/\b\f\r\t","topic":"\u00E9t\u00e9","ref":"é"}"#))
        #expect(m.type == "a\nbé😀\"\\/\u{8}\u{c}\r\t")
        #expect(m.topic == "été")
        #expect(m.ref == "é")
    }

    @Test(arguments: [
        #"{"type":"a",}"#,  // trailing comma in the object
        #"{"type":"a","body":[1,2,]}"#,  // trailing comma in the body
        #"{"type":"a","body":{"k":1,}}"#,
        #"{"type":"\ud800"}"#,  // lone high surrogate
        #"{"type":"\udc00"}"#,  // lone low surrogate
        #"{"type":"\ud800\u0041"}"#,  // high surrogate without a low one
        #"{"type":"a","body":"\ud83d"}"#,  // lone surrogate inside the body
        "{\"type\":\"a\u{1}b\"}",  // raw control character
        "{\"type\":\"a\",\"body\":\"x\ty\"}",  // raw tab inside the body
        #"{"type":"a"} x"#,  // trailing garbage
        #"{"type":"a"}{}"#,
        #"{"type":"a""#,  // truncated
        #"{"type":"a","body":}"#,
        #"{"type":"a","body":01}"#,
        #"{"type":"a","body":1.}"#,
        #"{"type":"a","body":tru}"#,
        #"{"type":"a","body":'x'}"#,
        #"{"type":"\x"}"#,  // bad escape
        #"{"type":"\u12"}"#,
        #"["type","a"]"#,  // not an object
        #""a""#,
        "",
        " ",
    ])
    func invalidJSONIsRejected(_ input: String) {
        expectCodecError(.malformed, "\(input)") { _ = try codec.decode(text(input)) }
    }

    @Test func deepNestingIsRejected() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        expectCodecError(.malformed) { _ = try codec.decode(text(#"{"type":"a","body":\#(deep)}"#)) }
        expectCodecError(.malformed) { _ = try codec.decode(text(#"{"other":\#(deep),"type":"a"}"#)) }
        let unbalanced = String(repeating: "[", count: 10_000)
        expectCodecError(.malformed) { _ = try codec.decode(text(#"{"type":"a","body":\#(unbalanced)"#)) }
        expectCodecError(.unencodable) { _ = try codec.encode(Message(type: "a", body: Bytes(deep))) }
        // moderate nesting is fine
        let ok = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: Never.self) { try codec.decode(text(#"{"type":"a","body":\#(ok)}"#)) }
    }

    @Test func nonJSONBodiesAreUnencodable() {
        for body: Bytes in ["hello", #"{"a":1} x"#, "[1,]", "", [0xff, 0xfe], Bytes(#""\ud800""#)] where !body.isEmpty {
            expectCodecError(.unencodable, "\(Array(body))") { _ = try codec.encode(Message(type: "a", body: body)) }
        }
    }

    @Test func binaryFramesAreTheWrongKind() {
        expectCodecError(.wrongFrameKind(.text)) { _ = try codec.decode(binary(Array(#"{"type":"a"}"#.utf8))) }
    }
}

@Suite struct MessagePackCodecTests {
    let codec = MessagePackCodec()

    @Test func name() {
        #expect(codec.name == "live.v1.msgpack")
    }

    @Test func emptyFieldsRoundTrip() throws {
        let m = Message(type: "")
        let frame = try codec.encode(m)
        #expect(frame.kind == .binary)
        #expect(Array(frame.payload) == [0x94, 0xa0, 0xa0, 0xa0, 0xc4, 0x00])
        #expect(try codec.decode(frame) == m)
    }

    /// A body the server wrote as JSON goes out as native MessagePack (issue 12: a
    /// MessagePack client never needs a JSON parser); an opaque body stays a bin.
    @Test func serverWrittenJSONBodiesArePackedNatively() throws {
        let body = Bytes(#" {"joined":[{"id":"7","n":-3}],"ok":true,"x":null,"f":2.5,"e":"\u00e9"} "#)
        let frame = try codec.encode(Message(type: "presence", topic: "t", body: body, bodyEncoding: .json))
        let double: [UInt8] = [0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0]  // 2.5
        let expected: [UInt8] = [0x94, 0xa8] + Array("presence".utf8) + [0xa1, 0x74, 0xa0]
            + [0x85, 0xa6] + Array("joined".utf8) + [0x91, 0x82, 0xa2, 0x69, 0x64, 0xa1, 0x37, 0xa1, 0x6e, 0xfd]
            + [0xa2, 0x6f, 0x6b, 0xc3, 0xa1, 0x78, 0xc0, 0xa1, 0x66] + double
            + [0xa1, 0x65, 0xa2, 0xc3, 0xa9]
        #expect(Array(frame.payload) == expected)
        let opaque = try codec.encode(Message(type: "message", body: Bytes(#"{"a":1}"#)))
        #expect(Array(opaque.payload).suffix(9) == [0xc4, 0x07] + Array(#"{"a":1}"#.utf8))
        #expect(throws: CodecError.self) {
            try codec.encode(Message(type: "reply", body: Bytes("{not json"), bodyEncoding: .json))
        }
    }

    /// What a server writes natively decodes to the same JSON, marked `.json`: the Swift
    /// client reads the server's presence events, replies and errors this way.
    @Test func nativeBodiesDecodeToJSON() throws {
        let json = Bytes(#"{"joined":[{"id":"7","n":-3}],"ok":true,"x":null,"f":2.5,"e":"é"}"#)
        let message = Message(type: "presence", topic: "t", body: json, bodyEncoding: .json)
        let decoded = try codec.decode(try codec.encode(message))
        #expect(decoded == message)
        // Regression (found by the fuzzer): a uint 64 above Int64.max came back a float.
        let big: [UInt8] = [0x94, 0xa0, 0xa0, 0xa0, 0xcf, 0xcf, 0xdd, 0xc3, 0xcf, 0xdf, 0xcf, 0xcf, 0x60]
        let once = try codec.decode(Frame(kind: .binary, payload: Bytes(big)))
        #expect(once.body.string == "14978343233284722528")
        #expect(try codec.decode(try codec.encode(once)) == once)
    }

    @Test func smallRoundTrip() throws {
        let m = Message(type: "join", topic: "room/é", ref: "7", body: [0, 1, 2, 0xff])
        let frame = try codec.encode(m)
        #expect(Array(frame.payload) == [0x94, 0xa4] + Array("join".utf8) + [0xa7] + Array("room/é".utf8)
            + [0xa1, 0x37, 0xc4, 0x04, 0, 1, 2, 0xff])
        #expect(try codec.decode(frame) == m)
    }

    @Test func str16RoundTrip() throws {
        let long = String(repeating: "é", count: 150)  // 300 bytes
        let m = Message(type: long, topic: String(repeating: "t", count: 300), ref: String(repeating: "r", count: 40), body: "x")
        let frame = try codec.encode(m)
        let bytes = Array(frame.payload)
        #expect(bytes[1] == 0xda && bytes[2] == 0x01 && bytes[3] == 0x2c, "300 bytes are a str16")
        #expect(try codec.decode(frame) == m)
    }

    @Test func bin32RoundTrip() throws {
        let body = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let m = Message(type: "big", body: Bytes(body))
        let frame = try codec.encode(m)
        let bytes = Array(frame.payload)
        // 94 a3 'big' a0 a0 c6 <len32>
        #expect(bytes[7] == 0xc6, "70,000 bytes are a bin32")
        #expect(Array(bytes[8..<12]) == [0x00, 0x01, 0x11, 0x70])
        let decoded = try codec.decode(frame)
        #expect(decoded == m)
        #expect(Array(decoded.body) == body)
    }

    @Test func acceptsNilFieldsAndStrBody() throws {
        #expect(try codec.decode(binary([0x94, 0xc0, 0xc0, 0xc0, 0xc0])) == Message(type: ""))
        #expect(try codec.decode(binary([0x94, 0xa1, 0x74, 0xc0, 0xa0, 0xa3, 0x61, 0x62, 0x63]))
            == Message(type: "t", body: "abc"))
        // array16 and str8/bin8 headers
        #expect(try codec.decode(binary([0xdc, 0x00, 0x04, 0xd9, 0x01, 0x61, 0xc0, 0xc0, 0xc4, 0x01, 0x07]))
            == Message(type: "a", body: [7]))
    }

    @Test(arguments: [
        ("wrong array size (3)", [0x93, 0xa1, 0x61, 0xa0, 0xa0]),
        ("wrong array size (5)", [0x95, 0xa1, 0x61, 0xa0, 0xa0, 0xc4, 0x00, 0xc0]),
        ("empty", []),
        ("not an array: str", [0xa1, 0x61]),
        ("not an array: map", [0x84, 0xa1, 0x61, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0]),
        ("not an array: int", [0x04]),
        ("truncated", [0x94, 0xa4, 0x6a, 0x6f, 0x69, 0x6e, 0xa0, 0xa0, 0xc4, 0x02, 0x01]),
        ("truncated after header", [0x94]),
        ("trailing bytes", [0x94, 0xa1, 0x61, 0xa0, 0xa0, 0xc4, 0x00, 0x00]),
        ("array32 of 4 billion", [0xdd, 0xff, 0xff, 0xff, 0xff]),
        ("array32 of 4 billion with elements", [0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0, 0xc0, 0xc0]),
        ("array16 of 65535", [0xdc, 0xff, 0xff, 0xc0]),
        ("str32 header beyond the frame", [0x94, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]),
        ("fixstr header beyond the frame", [0x94, 0xa5, 0x61, 0xa0, 0xa0, 0xc0]),
        ("str8 header beyond the frame", [0x94, 0xd9, 0x10, 0x61]),
        ("bin32 header beyond the frame", [0x94, 0xa0, 0xa0, 0xa0, 0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00]),
        ("int field", [0x94, 0x01, 0xa0, 0xa0, 0xc4, 0x00]),
        ("bin type", [0x94, 0xc4, 0x01, 0x61, 0xa0, 0xa0, 0xc0]),
        ("array body counting beyond the frame", [0x94, 0xa0, 0xa0, 0xa0, 0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc0]),
        ("map body counting beyond the frame", [0x94, 0xa0, 0xa0, 0xa0, 0xdf, 0x0f, 0xff, 0xff, 0xff]),
        ("bin inside a body array", [0x94, 0xa0, 0xa0, 0xa0, 0x91, 0xc4, 0x00]),
        ("ext body", [0x94, 0xa0, 0xa0, 0xa0, 0xd4, 0x01, 0x00]),
        ("int map key in the body", [0x94, 0xa0, 0xa0, 0xa0, 0x81, 0x01, 0x02]),
        ("body nested 33 deep", [0x94, 0xa0, 0xa0, 0xa0] + [UInt8](repeating: 0x91, count: 33) + [0xc0]),
        ("map topic", [0x94, 0xa0, 0x80, 0xa0, 0xc0]),
    ] as [(String, [UInt8])])
    func malformedIsRejected(_ name: String, _ bytes: [UInt8]) {
        expectCodecError(.malformed, "\(name)") { _ = try codec.decode(binary(bytes)) }
    }

    @Test func textFramesAreTheWrongKind() {
        expectCodecError(.wrongFrameKind(.binary)) { _ = try codec.decode(text("\u{94}")) }
    }

    @Test(arguments: [
        ("type", [0x94, 0xa2, 0x61, 0xff, 0xa0, 0xa0, 0xc0]),
        ("topic", [0x94, 0xa1, 0x61, 0xa6, 0x72, 0x6f, 0x6f, 0x6d, 0x3a, 0xff, 0xa0, 0xc0]),
        ("ref", [0x94, 0xa1, 0x61, 0xa0, 0xa1, 0xfe, 0xc0]),
        // a truncated sequence, an overlong one, a surrogate: each would be repaired into
        // U+FFFD, which makes different topics equal
        ("topic: truncated sequence", [0x94, 0xa1, 0x61, 0xa2, 0xe2, 0x82, 0xa0, 0xc0]),
        ("topic: overlong", [0x94, 0xa1, 0x61, 0xa2, 0xc0, 0xaf, 0xa0, 0xc0]),
        ("topic: surrogate", [0x94, 0xa1, 0x61, 0xa3, 0xed, 0xa0, 0x80, 0xa0, 0xc0]),
        ("ref in a str8", [0x94, 0xa1, 0x61, 0xa0, 0xd9, 0x03, 0x72, 0x2d, 0x80, 0xc0]),
    ] as [(String, [UInt8])])
    func invalidUTF8InAStringFieldIsRejected(_ field: String, _ bytes: [UInt8]) {
        expectCodecError(.malformed, "\(field)") { _ = try codec.decode(binary(bytes)) }
    }

    @Test func validUTF8InEveryStringFieldDecodes() throws {
        // 'é' (2 bytes), '€' (3 bytes), '😀' (4 bytes): valid, so taken as sent
        let m = try codec.decode(binary([0x94, 0xa2, 0xc3, 0xa9, 0xa3, 0xe2, 0x82, 0xac, 0xa4, 0xf0, 0x9f, 0x98, 0x80, 0xc0]))
        #expect(m == Message(type: "é", topic: "€", ref: "😀"))
    }

    @Test func invalidUTF8InTheBodyIsCarriedExactly() throws {
        // the body is opaque, whether sent as bin or as str
        let bin = try codec.decode(binary([0x94, 0xa1, 0x61, 0xa0, 0xa0, 0xc4, 0x02, 0xff, 0xfe]))
        #expect(Array(bin.body) == [0xff, 0xfe])
        let str = try codec.decode(binary([0x94, 0xa1, 0x61, 0xa0, 0xa0, 0xa2, 0xff, 0xfe]))
        #expect(Array(str.body) == [0xff, 0xfe])
        #expect(Array(try codec.encode(str).payload).suffix(4) == [0xc4, 0x02, 0xff, 0xfe])
    }

    @Test func decodedBodyIsTheExactBytes() throws {
        let body: [UInt8] = [0xc0, 0x94, 0x00, 0xff]  // bytes that look like MessagePack
        let m = try codec.decode(binary([0x94, 0xa0, 0xa0, 0xa0, 0xc4, 0x04] + body))
        #expect(Array(m.body) == body)
        #expect(m.body.count == 4)
    }
}

@Suite struct RawCodecTests {
    let codec = RawCodec()

    @Test func mapsFramesOneToOne() throws {
        #expect(codec.name == "live.v1.raw")
        #expect(try codec.decode(text("hi é")) == Message(type: "text", body: "hi é"))
        #expect(try codec.decode(binary([0, 0xff])) == Message(type: "binary", body: [0, 0xff]))
        #expect(try codec.encode(Message(type: "text", body: "hi é")) == text("hi é"))
        #expect(try codec.encode(Message(type: "binary", body: [0, 0xff])) == binary([0, 0xff]))
        #expect(try codec.encode(Message(type: "binary")) == binary([]))
        // topic and ref are not carried
        #expect(try codec.encode(Message(type: "text", topic: "t", ref: "r", body: "x")) == text("x"))
        for frame in [text("round"), binary([1, 2, 3]), text("")] {
            #expect(try codec.encode(try codec.decode(frame)) == frame)
        }
    }

    @Test func refusesInvalidUTF8AsText() {
        expectCodecError(.unencodable) { _ = try codec.encode(Message(type: "text", body: [0xff, 0xfe])) }
        expectCodecError(.unencodable) { _ = try codec.encode(Message(type: "text", body: [0xed, 0xa0, 0x80])) }  // a surrogate
        expectCodecError(.unencodable) { _ = try codec.encode(Message(type: "other", body: [0xc3])) }  // truncated
    }
}

@Suite struct MetaTests {
    @Test func literalAndAccessors() {
        let m: Meta = ["user": "alice", "admin": true, "quota": 5, "ratio": 0.5]
        #expect(m.string("user") == "alice")
        #expect(m.bool("admin") == true)
        #expect(m.int("quota") == 5)
        #expect(m.double("ratio") == 0.5)
        #expect(m.double("quota") == 5.0)
        #expect(m.int("user") == nil)
        #expect(m.string("admin") == nil)
        #expect(m.bool("quota") == nil)
        #expect(m.string("missing") == nil)
        #expect(m["user"] == .string("alice"))
        #expect(m.values.count == 4)
        let empty: Meta = [:]
        #expect(empty.values.isEmpty)
        let built = Meta(["user": .string("bob")])
        #expect(built.string("user") == "bob")
        #expect(Meta.Value.int(3).description == "3")
    }

    @Test func entriesAreKeyedNotOrdered() {
        // the same entries in any order are the same Meta; a repeated literal key keeps its last value
        let a: Meta = ["b": 2, "a": 1, "c": "three"]
        let b = Meta(["c": .string("three"), "a": .int(1), "b": .int(2)])
        #expect(a == b && a.hashValue == b.hashValue)
        #expect(a != ["a": 1, "b": 2])
        let repeated: Meta = ["k": 1, "k": 2]
        #expect(repeated.int("k") == 2 && repeated.values == ["k": .int(2)])
        // every key of a larger Meta is found, and nothing else
        var many: [String: Meta.Value] = [:]
        for i in 0..<100 { many["key\(i)"] = .int(i) }
        let big = Meta(many)
        var missed: [Int] = []
        for i in 0..<100 where big.int("key\(i)") != i { missed.append(i) }
        #expect(missed.isEmpty)
        #expect(big["key100"] == nil && big[""] == nil && big["key"] == nil)
        #expect(big.values == many)
    }
}
