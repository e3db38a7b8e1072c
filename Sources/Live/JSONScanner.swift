/// A validating JSON scanner over raw bytes (RFC 8259), just what the JSON codec needs:
/// read strings, and skip over any value while checking it, so that a body can be handed
/// on as the exact bytes received. No allocation except for the strings it returns.
struct JSONScanner {
    /// Deeper nesting is refused rather than risking the stack.
    static let maxDepth = 512

    let bytes: UnsafeRawBufferPointer
    var index = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var atEnd: Bool { index >= bytes.count }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func expect(_ byte: UInt8) throws {
        guard peek == byte else { throw fail("expected '\(Character(Unicode.Scalar(byte)))'") }
        index += 1
    }

    func fail(_ why: String) -> CodecError { .malformed("\(why) at byte \(index)") }

    /// A string value, unescaped.
    mutating func readString() throws -> String {
        try expect(UInt8(ascii: "\""))
        let start = index
        // fast path: no escapes
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw fail("control character in string") }
            index += 1
        }
        var out = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let b = bytes[index]
            index += 1
            switch b {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try readEscape(&out, build: true)
            case 0..<0x20:
                throw fail("control character in string")
            default:
                out.append(b)
            }
        }
        throw fail("unterminated string")
    }

    /// Checks a string without building it.
    mutating func skipString() throws {
        try expect(UInt8(ascii: "\""))
        while index < bytes.count {
            let b = bytes[index]
            index += 1
            if b == UInt8(ascii: "\"") { return }
            if b == UInt8(ascii: "\\") {
                var none: [UInt8] = []
                try readEscape(&none, build: false)
            } else if b < 0x20 {
                throw fail("control character in string")
            }
        }
        throw fail("unterminated string")
    }

    private mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            index += 1
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw fail("bad \\u escape")
            }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    /// Reads one escape after its backslash; appends its UTF-8 to `out` when `build`.
    private mutating func readEscape(_ out: inout [UInt8], build: Bool) throws {
        guard index < bytes.count else { throw fail("unterminated escape") }
        let c = bytes[index]
        index += 1
        let simple: UInt8?
        switch c {
        case UInt8(ascii: "\""): simple = 0x22
        case UInt8(ascii: "\\"): simple = 0x5C
        case UInt8(ascii: "/"): simple = 0x2F
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"): simple = nil
        default: throw fail("bad escape")
        }
        if let simple {
            if build { out.append(simple) }
            return
        }
        var scalar = try hex4()
        if (0xD800...0xDBFF).contains(scalar) {
            // a high surrogate must be followed by an escaped low one
            guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"),
                bytes[index + 1] == UInt8(ascii: "u")
            else { throw fail("lone surrogate") }
            index += 2
            let low = try hex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw fail("lone surrogate") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(scalar) {
            throw fail("lone surrogate")
        }
        if build { out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8) }
    }

    private mutating func skipDigits() -> Int {
        let start = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
            index += 1
        }
        return index - start
    }

    mutating func skipNumber() throws {
        if peek == UInt8(ascii: "-") { index += 1 }
        if peek == UInt8(ascii: "0") {
            index += 1
        } else if skipDigits() == 0 {
            throw fail("bad number")
        }
        if peek == UInt8(ascii: ".") {
            index += 1
            if skipDigits() == 0 { throw fail("bad number") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            index += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
            if skipDigits() == 0 { throw fail("bad number") }
        }
    }

    mutating func skipLiteral(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard index + n <= bytes.count,
            memcmp(bytes.baseAddress! + index, word.utf8Start, n) == 0
        else { throw fail("bad literal") }
        index += n
    }

    /// Checks one value (and what it contains) and moves past it.
    mutating func skipValue(depth: Int = 0) throws {
        guard depth < Self.maxDepth else { throw fail("nested too deeply") }
        skipWhitespace()
        guard let b = peek else { throw fail("missing value") }
        switch b {
        case UInt8(ascii: "\""):
            try skipString()
        case UInt8(ascii: "{"):
            index += 1
            skipWhitespace()
            if peek == UInt8(ascii: "}") {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                try skipString()
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                try skipValue(depth: depth + 1)
                skipWhitespace()
                if peek == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                try expect(UInt8(ascii: "}"))
                return
            }
        case UInt8(ascii: "["):
            index += 1
            skipWhitespace()
            if peek == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                try skipValue(depth: depth + 1)
                skipWhitespace()
                if peek == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                try expect(UInt8(ascii: "]"))
                return
            }
        case UInt8(ascii: "t"): try skipLiteral("true")
        case UInt8(ascii: "f"): try skipLiteral("false")
        case UInt8(ascii: "n"): try skipLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try skipNumber()
        default: throw fail("unexpected byte")
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
