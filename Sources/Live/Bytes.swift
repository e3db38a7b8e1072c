/// Opaque bytes: a message body, or the payload of one frame.
///
/// `Bytes` is a zero-based view into shared, immutable storage. A received frame is copied
/// once out of the C core's read buffer (which is only valid during the callback) into Swift
/// storage; decoding then hands out `Bytes` that point into that storage instead of copying
/// the body again, and slicing or passing `Bytes` between threads never copies either.
public struct Bytes: Sendable, Hashable, RandomAccessCollection {
    @usableFromInline let storage: ArraySlice<UInt8>

    public init() { storage = [] }
    public init(_ bytes: [UInt8]) { storage = bytes[...] }
    public init<S: Sequence>(_ bytes: S) where S.Element == UInt8 { storage = ArraySlice(bytes) }
    public init(_ string: String) { storage = ArraySlice(string.utf8) }
    init(slice: ArraySlice<UInt8>) { storage = slice }

    /// Copies `count` bytes from C memory.
    init(copying pointer: UnsafeRawPointer?, count: Int) {
        guard let pointer, count > 0 else {
            storage = []
            return
        }
        storage = ArraySlice(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { storage.count }
    public subscript(position: Int) -> UInt8 { storage[storage.startIndex + position] }

    /// The bytes `range`, sharing this storage.
    public subscript(range: Range<Int>) -> Bytes {
        Bytes(slice: storage[(storage.startIndex + range.lowerBound)..<(storage.startIndex + range.upperBound)])
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes(body)
    }

    /// The bytes as a UTF-8 string (invalid sequences are repaired with U+FFFD).
    public var string: String { String(decoding: storage, as: UTF8.self) }
}

extension Bytes: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self.init(value) }
}

extension Bytes: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: UInt8...) { self.init(elements) }
}

extension Bytes: CustomStringConvertible {
    public var description: String { "\(count) bytes" }
}
