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

    public private(set) var values: [String: Value]

    public init(_ values: [String: Value] = [:]) { self.values = values }

    public init(dictionaryLiteral elements: (String, Value)...) {
        values = Dictionary(elements, uniquingKeysWith: { _, last in last })
    }

    public subscript(key: String) -> Value? { values[key] }

    public func string(_ key: String) -> String? {
        if case .string(let s) = values[key] { return s }
        return nil
    }

    public func int(_ key: String) -> Int? {
        if case .int(let i) = values[key] { return i }
        return nil
    }

    public func double(_ key: String) -> Double? {
        switch values[key] {
        case .double(let d): return d
        case .int(let i): return Double(i)
        default: return nil
        }
    }

    public func bool(_ key: String) -> Bool? {
        if case .bool(let b) = values[key] { return b }
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
