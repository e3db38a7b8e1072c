/// What `onAuth` learned about a connection (user id, roles, display name...), read-only
/// for the session's life and visible to every handler.
///
/// A dictionary from names to a small closed set of `Sendable` values rather than
/// `[String: Any]`: `Any` cannot cross threads safely and says nothing about what is inside,
/// while every value that authorisation produces in practice is a string, a number or a flag.
/// Literals work directly: `["user": "alice", "admin": true, "quota": 5]`.
public struct Meta: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public enum Value: Sendable, Hashable {
        case string(String)
        case int(Int)
        case double(Double)
        case bool(Bool)
    }

    /// Sorted by key, each key once. Every session holds a `Meta` for its whole life, and
    /// a typical one has one to five entries: a sorted array is one small allocation where
    /// a hash table takes about twice the memory, and a lookup in it is as quick. The most
    /// common meta of all, one entry (a user id, a display name), is kept inline: no
    /// allocation at all (docs/CORE.md, "Memory per idle session"). Always normalised (no
    /// entry: `.none`, one: `.one`, more: `.many`), so that the synthesised `==` and `hash`
    /// compare contents.
    private var storage: Storage

    private enum Storage: Sendable, Hashable {
        case none
        case one(Entry)
        case many([Entry])
    }

    private struct Entry: Sendable, Hashable {
        var key: String
        var value: Value
    }

    /// The entries as a dictionary (built on each call).
    public var values: [String: Value] {
        switch storage {
        case .none: return [:]
        case .one(let e): return [e.key: e.value]
        case .many(let entries): return Dictionary(uniqueKeysWithValues: entries.lazy.map { ($0.key, $0.value) })
        }
    }

    public init(_ values: [String: Value] = [:]) {
        switch values.count {
        case 0: storage = .none
        case 1: storage = .one(Entry(key: values.first!.key, value: values.first!.value))
        default: storage = .many(values.map { Entry(key: $0.key, value: $0.value) }.sorted { $0.key < $1.key })
        }
    }

    public init(dictionaryLiteral elements: (String, Value)...) {
        self.init(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }

    public subscript(key: String) -> Value? {
        switch storage {
        case .none: return nil
        case .one(let e): return e.key == key ? e.value : nil
        case .many(let entries):
            // binary search: the array is sorted by key
            var low = 0
            var high = entries.count
            while low < high {
                let mid = (low + high) / 2
                let k = entries[mid].key
                if k == key { return entries[mid].value }
                if k < key { low = mid + 1 } else { high = mid }
            }
            return nil
        }
    }

    public func string(_ key: String) -> String? {
        if case .string(let s) = self[key] { return s }
        return nil
    }

    public func int(_ key: String) -> Int? {
        if case .int(let i) = self[key] { return i }
        return nil
    }

    public func double(_ key: String) -> Double? {
        switch self[key] {
        case .double(let d): return d
        case .int(let i): return Double(i)
        default: return nil
        }
    }

    public func bool(_ key: String) -> Bool? {
        if case .bool(let b) = self[key] { return b }
        return nil
    }
}

extension Meta.Value: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension Meta.Value: CustomStringConvertible {
    public var description: String {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bool(let b): return String(b)
        }
    }
}
