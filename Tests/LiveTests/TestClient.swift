// A small blocking WebSocket client for the end-to-end tests: POSIX sockets, a read
// timeout on every read (SO_RCVTIMEO), and just enough RFC 6455 to drive the server,
// including frames a well-behaved client would never send (unmasked ones).
//
// Every call blocks its thread, so tests reach it through the `async` wrappers at the end,
// which run each call on a thread of its own instead of a thread of Swift's cooperative
// pool (the server's `onAuth` and `onHTTP` handlers run on that pool).

import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

enum TestClientError: Error, CustomStringConvertible {
    case connectFailed(Int32)
    case timeout(String)
    case eof
    case io(String, Int32)
    case badResponse(String)
    case notUpgraded(status: Int, body: String)
    case unexpected(String)

    var description: String {
        switch self {
        case .connectFailed(let e): return "connect failed: errno \(e)"
        case .timeout(let what): return "timed out waiting for \(what)"
        case .eof: return "connection closed by the server"
        case .io(let what, let e): return "\(what) failed: errno \(e)"
        case .badResponse(let why): return "bad HTTP response: \(why)"
        case .notUpgraded(let s, let b): return "upgrade refused with \(s): \(b)"
        case .unexpected(let why): return why
        }
    }
}

/// The server's answer to an upgrade request.
struct HandshakeResponse: Sendable {
    var status: Int
    /// Header names lowercased, in order.
    var headers: [(name: String, value: String)]
    /// The body of a non-101 answer (by Content-Length, else up to EOF).
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.name == name.lowercased() }?.value
    }

    var bodyString: String { String(decoding: body, as: UTF8.self) }
}

enum Opcode: UInt8, Sendable {
    case continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xA
}

struct WSFrame: Sendable, CustomStringConvertible {
    var fin: Bool
    var opcode: UInt8
    var payload: [UInt8]

    var text: String { String(decoding: payload, as: UTF8.self) }

    /// A close frame's status code (nil when it carries none).
    var closeCode: UInt16? {
        guard opcode == Opcode.close.rawValue, payload.count >= 2 else { return nil }
        return UInt16(payload[0]) << 8 | UInt16(payload[1])
    }

    var closeReason: String {
        guard opcode == Opcode.close.rawValue, payload.count > 2 else { return "" }
        return String(decoding: payload[2...], as: UTF8.self)
    }

    var description: String {
        if opcode == Opcode.close.rawValue { return "close(\(closeCode.map(String.init) ?? "none"), \"\(closeReason)\")" }
        if opcode == Opcode.text.rawValue { return "text(\(text))" }
        return "frame(op \(opcode), \(payload.count) bytes)"
    }
}

final class WSClient: @unchecked Sendable {
    // @unchecked: a client is used by one test at a time, one call at a time.
    private(set) var fd: Int32
    private var buffer: [UInt8] = []
    private var readIndex = 0
    let timeout: Double

    private init(fd: Int32, timeout: Double) {
        self.fd = fd
        self.timeout = timeout
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    // MARK: connecting

    /// Opens a TCP connection to 127.0.0.1:port with a read timeout of `timeout` seconds.
    static func tcp(port: Int, timeout: Double = 10) throws -> WSClient {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestClientError.io("socket", errno) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            throw TestClientError.connectFailed(e)
        }
        return WSClient(fd: fd, timeout: timeout)
    }

    /// Connects and sends an upgrade request; returns the client (ready for frames when
    /// the status is 101) and the server's answer.
    static func handshake(
        port: Int, path: String = "/", protocols: [String] = [],
        headers: [(String, String)] = [], timeout: Double = 10
    ) throws -> (WSClient, HandshakeResponse) {
        let client = try tcp(port: port, timeout: timeout)
        try client.sendUpgradeRequest(port: port, path: path, protocols: protocols, headers: headers)
        let response = try client.readResponse()
        return (client, response)
    }

    /// Connects and requires a 101 answer.
    static func connect(
        port: Int, path: String = "/", protocols: [String] = [],
        headers: [(String, String)] = [], timeout: Double = 10
    ) throws -> (WSClient, HandshakeResponse) {
        let (client, response) = try handshake(port: port, path: path, protocols: protocols,
                                               headers: headers, timeout: timeout)
        guard response.status == 101 else {
            throw TestClientError.notUpgraded(status: response.status, body: response.bodyString)
        }
        return (client, response)
    }

    /// Writes an upgrade request (a valid one unless `headers` says otherwise).
    func sendUpgradeRequest(port: Int, path: String = "/", protocols: [String] = [], headers: [(String, String)] = []) throws {
        var key = [UInt8](repeating: 0, count: 16)
        for i in key.indices { key[i] = UInt8.random(in: 0...255) }
        var request = "GET \(path) HTTP/1.1\r\n"
        request += "Host: 127.0.0.1:\(port)\r\n"
        request += "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: \(Data(key).base64EncodedString())\r\n"
        request += "Sec-WebSocket-Version: 13\r\n"
        if !protocols.isEmpty { request += "Sec-WebSocket-Protocol: \(protocols.joined(separator: ", "))\r\n" }
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        try writeAll(Array(request.utf8))
    }

    /// The local port of the connection (the server sees it in `remoteAddress`).
    var localPort: Int {
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Reads an HTTP response head (and for a non-101 answer, its body).
    func readResponse() throws -> HandshakeResponse {
        // the head, up to the blank line
        var headEnd: Int? = nil
        while headEnd == nil {
            if let r = find([13, 10, 13, 10], from: readIndex) {
                headEnd = r
            } else {
                try fill(what: "the HTTP response head")
            }
        }
        let head = String(decoding: buffer[readIndex..<headEnd!], as: UTF8.self)
        readIndex = headEnd! + 4
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw TestClientError.badResponse(statusLine)
        }
        var headers: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw TestClientError.badResponse(line) }
            headers.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var response = HandshakeResponse(status: status, headers: headers, body: [])
        if status != 101 {
            if let length = response.header("content-length").flatMap({ Int($0) }) {
                response.body = try readExactly(length, what: "the response body")
            } else {
                while (try? fill(what: "the response body")) != nil {}
                response.body = Array(buffer[readIndex...])
                readIndex = buffer.count
            }
        }
        return response
    }

    // MARK: sending

    /// Sends one frame, masked unless `masked` is false.
    func send(opcode: Opcode, _ payload: [UInt8], fin: Bool = true, masked: Bool = true) throws {
        var out: [UInt8] = [(fin ? 0x80 : 0) | opcode.rawValue]
        let maskBit: UInt8 = masked ? 0x80 : 0
        let n = payload.count
        if n < 126 {
            out.append(maskBit | UInt8(n))
        } else if n <= 0xFFFF {
            out.append(maskBit | 126)
            out.append(UInt8(n >> 8))
            out.append(UInt8(n & 0xFF))
        } else {
            out.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((n >> shift) & 0xFF)) }
        }
        if masked {
            let key = (0..<4).map { _ in UInt8.random(in: 0...255) }
            out.append(contentsOf: key)
            out.append(contentsOf: payload.enumerated().map { $0.element ^ key[$0.offset & 3] })
        } else {
            out.append(contentsOf: payload)
        }
        try writeAll(out)
    }

    func sendText(_ text: String) throws { try send(opcode: .text, Array(text.utf8)) }
    func sendBinary(_ bytes: [UInt8]) throws { try send(opcode: .binary, bytes) }
    func sendPing(_ payload: [UInt8] = []) throws { try send(opcode: .ping, payload) }

    func sendClose(code: UInt16? = 1000, reason: String = "") throws {
        var payload: [UInt8] = []
        if let code {
            payload = [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8)
        }
        try send(opcode: .close, payload)
    }

    func writeAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TestClientError.io("send", errno)
            }
            offset += n
        }
    }

    // MARK: receiving

    /// The next frame, whatever it is (pings included; nothing is answered).
    func receiveFrame() throws -> WSFrame {
        let h = try readExactly(2, what: "a frame header")
        let fin = h[0] & 0x80 != 0
        let opcode = h[0] & 0x0F
        guard h[1] & 0x80 == 0 else { throw TestClientError.unexpected("the server sent a masked frame") }
        var length = Int(h[1] & 0x7F)
        if length == 126 {
            let b = try readExactly(2, what: "a frame length")
            length = Int(b[0]) << 8 | Int(b[1])
        } else if length == 127 {
            let b = try readExactly(8, what: "a frame length")
            length = b.reduce(0) { $0 << 8 | Int($1) }
        }
        let payload = try readExactly(length, what: "a frame payload")
        return WSFrame(fin: fin, opcode: opcode, payload: payload)
    }

    /// The next data message (text/binary, fragments joined) or close frame; pings are
    /// answered with pongs and pongs are skipped.
    func receive() throws -> WSFrame {
        var message: WSFrame? = nil
        while true {
            let f = try receiveFrame()
            switch f.opcode {
            case Opcode.ping.rawValue:
                try send(opcode: .pong, f.payload)
            case Opcode.pong.rawValue:
                continue
            case Opcode.close.rawValue:
                return f
            case Opcode.continuation.rawValue:
                guard message != nil else { throw TestClientError.unexpected("continuation without a start") }
                message!.payload += f.payload
                if f.fin { return message! }
            default:
                if f.fin { return f }
                message = f
            }
        }
    }

    /// Reads up to the close frame (skipping data) and returns it.
    func receiveClose() throws -> WSFrame {
        while true {
            let f = try receive()
            if f.opcode == Opcode.close.rawValue { return f }
        }
    }

    /// Whether the server ended the connection: the next read returns EOF (or a reset);
    /// then closes this side too, as a client does. Data still buffered is discarded.
    func waitForEOF() throws {
        buffer.removeAll()
        readIndex = 0
        while true {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 || (n < 0 && errno == ECONNRESET) {
                drop()
                return
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw TestClientError.timeout("EOF") }
                throw TestClientError.io("recv", errno)
            }
        }
    }

    /// Closes the socket without a close frame (the server sees the TCP connection end).
    func drop() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    private func find(_ needle: [UInt8], from: Int) -> Int? {
        guard buffer.count - from >= needle.count else { return nil }
        var i = from
        while i + needle.count <= buffer.count {
            if buffer[i] == needle[0], Array(buffer[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }

    private func fill(what: String) throws {
        if readIndex > 0 && readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                buffer.append(contentsOf: chunk[0..<n])
                return
            }
            if n == 0 { throw TestClientError.eof }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw TestClientError.timeout(what) }
            if errno == ECONNRESET { throw TestClientError.eof }
            throw TestClientError.io("recv", errno)
        }
    }

    private func readExactly(_ n: Int, what: String) throws -> [UInt8] {
        while buffer.count - readIndex < n { try fill(what: what) }
        let out = Array(buffer[readIndex..<(readIndex + n)])
        readIndex += n
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        }
        return out
    }
}

// MARK: off the cooperative pool

/// Runs a blocking call on a thread of its own and returns its result.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
        let thread = Thread {
            do { c.resume(returning: try body()) } catch { c.resume(throwing: error) }
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

extension WSClient {
    static func connect(
        port: Int, path: String = "/", protocols: [String] = [],
        headers: [(String, String)] = [], timeout: Double = 10
    ) async throws -> (WSClient, HandshakeResponse) {
        let headers = headers.map { HeaderPair(name: $0.0, value: $0.1) }
        return try await offPool {
            let (c, r) = try WSClient.connect(port: port, path: path, protocols: protocols,
                                              headers: headers.map { ($0.name, $0.value) }, timeout: timeout)
            return ClientAndResponse(client: c, response: r)
        }.pair
    }

    static func handshake(
        port: Int, path: String = "/", protocols: [String] = [],
        headers: [(String, String)] = [], timeout: Double = 10
    ) async throws -> (WSClient, HandshakeResponse) {
        let headers = headers.map { HeaderPair(name: $0.0, value: $0.1) }
        return try await offPool {
            let (c, r) = try WSClient.handshake(port: port, path: path, protocols: protocols,
                                                headers: headers.map { ($0.name, $0.value) }, timeout: timeout)
            return ClientAndResponse(client: c, response: r)
        }.pair
    }

    /// Connects with the default codec (JSON) and no subprotocol.
    static func connect(port: Int, path: String = "/") async throws -> WSClient {
        try await connect(port: port, path: path, protocols: []).0
    }

    static func tcp(port: Int, timeout: Double = 10) async throws -> WSClient {
        try await offPool { try WSClient.tcp(port: port, timeout: timeout) }
    }

    func readResponse() async throws -> HandshakeResponse { try await offPool { try self.readResponse() } }
    func receive() async throws -> WSFrame { try await offPool { try self.receive() } }
    func receiveFrame() async throws -> WSFrame { try await offPool { try self.receiveFrame() } }
    func receiveClose() async throws -> WSFrame { try await offPool { try self.receiveClose() } }
    func waitForEOF() async throws { try await offPool { try self.waitForEOF() } }

    /// The next data message as text; fails on a close frame or a binary frame.
    func receiveText() async throws -> String {
        let f = try await receive()
        guard f.opcode == Opcode.text.rawValue else { throw TestClientError.unexpected("expected text, got \(f)") }
        return f.text
    }

    /// The next data message as binary; fails on a close frame or a text frame.
    func receiveBinary() async throws -> [UInt8] {
        let f = try await receive()
        guard f.opcode == Opcode.binary.rawValue else { throw TestClientError.unexpected("expected binary, got \(f)") }
        return f.payload
    }
}

private struct HeaderPair: Sendable {
    var name: String
    var value: String
}

private struct ClientAndResponse: Sendable {
    var client: WSClient
    var response: HandshakeResponse
    var pair: (WSClient, HandshakeResponse) { (client, response) }
}
