import HTTPTypes

/// An HTTP request as received: the upgrade request handed to `onAuth`, or a plain request
/// handed to `onHTTP`.
public struct Request: Sendable {
    public struct QueryItem: Sendable, Hashable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public var method: HTTPRequest.Method
    /// The path, percent-encoding left as sent.
    public var path: String
    /// The raw query string, without `?`.
    public var query: String
    public var headers: HTTPFields
    /// "ip:port" or "[ipv6]:port".
    public var remoteAddress: String
    /// The subprotocol agreed for an upgrade (the session's codec), if any.
    public var subprotocol: String?

    /// The query's name/value pairs, percent-decoded (`+` as space).
    public var queryItems: [QueryItem] {
        query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return QueryItem(name: percentDecoded(parts[0]),
                             value: parts.count > 1 ? percentDecoded(parts[1]) : "")
        }
    }

    /// The value of the first query item named `name`.
    public func queryValue(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }
}

private func percentDecoded(_ s: Substring) -> String {
    var out: [UInt8] = []
    var bytes = Array(s.utf8)[...]
    while let b = bytes.popFirst() {
        if b == UInt8(ascii: "+") {
            out.append(0x20)
        } else if b == UInt8(ascii: "%"), bytes.count >= 2,
            let hi = hexValue(bytes[bytes.startIndex]), let lo = hexValue(bytes[bytes.startIndex + 1])
        {
            out.append(hi << 4 | lo)
            bytes = bytes.dropFirst(2)
        } else {
            out.append(b)
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// The value of one hex digit; nil for anything else (a sign included, which
/// `UInt8(_:radix:)` would accept).
private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// Thrown by `onAuth` to refuse an upgrade with an HTTP status, headers and body, e.g.
/// `throw Rejection(status: .forbidden, body: "no access to this room")`, or
/// `throw Rejection(status: .tooManyRequests, headers: [.retryAfter: "30"])`.
public struct Rejection: Error, Sendable {
    public var status: HTTPResponse.Status
    /// Header fields for the response (e.g. `WWW-Authenticate`, `Retry-After`). The core
    /// adds the framing ones (`Content-Length`, `Connection: close`).
    public var headers: HTTPFields
    public var body: String

    public init(status: HTTPResponse.Status, headers: HTTPFields = [:], body: String = "") {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// The answer to a plain HTTP request (`onHTTP`). The connection closes after it.
public struct Response: Sendable {
    public var status: HTTPResponse.Status
    public var headers: HTTPFields
    public var body: Bytes

    public init(status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], body: Bytes = Bytes()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public init(status: HTTPResponse.Status = .ok, contentType: String, body: Bytes) {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        self.init(status: status, headers: headers, body: body)
    }

    /// 426 Upgrade Required with `Upgrade: websocket` (RFC 9110 15.5.22 asks for the
    /// header): the answer to a plain request on a WebSocket endpoint. A server without
    /// `Options.onHTTP` answers every plain request with it; an `onHTTP` handler returns it
    /// for its WebSocket path.
    public static func upgradeRequired() -> Response {
        var headers = HTTPFields()
        headers[.upgrade] = "websocket"
        headers[.connection] = "Upgrade"
        headers[.secWebSocketVersion] = "13"
        headers[.contentType] = "text/plain"
        return Response(status: .upgradeRequired, headers: headers, body: "this endpoint speaks WebSocket\n")
    }
}
