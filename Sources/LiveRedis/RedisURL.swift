/// Where a Redis server is: `redis://[:password@]host[:port][/db]` (port 6379 and db 0 by
/// default; an IPv6 host in brackets). TLS (`rediss://`) is not supported.
public struct RedisURL: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var password: String?
    public var db: Int

    public init(host: String, port: Int = 6379, password: String? = nil, db: Int = 0) {
        self.host = host
        self.port = port
        self.password = password
        self.db = db
    }

    /// Parses a URL; throws `RedisURLError` saying what is wrong with it.
    public init(_ text: String) throws {
        guard text.hasPrefix("redis://") else { throw RedisURLError("\(text): must start with redis://") }
        var rest = Substring(text.dropFirst("redis://".count))
        var password: String? = nil
        if let at = rest.lastIndex(of: "@") {
            var secret = rest[..<at]
            if let colon = secret.firstIndex(of: ":") { secret = secret[secret.index(after: colon)...] }  // user:password or :password
            password = secret.isEmpty ? nil : String(secret)
            rest = rest[rest.index(after: at)...]
        }
        var db = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            if !path.isEmpty {
                guard let n = Int(path), n >= 0 else { throw RedisURLError("\(text): the database must be a number") }
                db = n
            }
            rest = rest[..<slash]
        }
        var host = rest, port = 6379
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw RedisURLError("\(text): unclosed [") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()) else { throw RedisURLError("\(text): bad port") }
                port = p
            } else if !after.isEmpty {
                throw RedisURLError("\(text): bad port")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let p = Int(rest[rest.index(after: colon)...]) else { throw RedisURLError("\(text): bad port") }
            port = p
        }
        guard !host.isEmpty else { throw RedisURLError("\(text): no host") }
        guard (1...65535).contains(port) else { throw RedisURLError("\(text): port outside 1...65535") }
        self.init(host: String(host), port: port, password: password, db: db)
    }

    /// The URL without the password.
    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "redis://\(h):\(port)" + (db == 0 ? "" : "/\(db)")
    }
}

public struct RedisURLError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
