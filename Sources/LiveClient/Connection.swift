import CLive
import Live

/// One connection attempt: the core's clive_client handle and the callbacks that reach
/// the client. The core holds one retained reference to this object as the callbacks'
/// user pointer, given back in on_close.
final class Attempt: @unchecked Sendable {
    // Written under ClientCore's lock only.
    var handle: OpaquePointer?
    let core: ClientCore

    init(core: ClientCore) { self.core = core }

    struct Target {
        var host: String
        var port: UInt16
        var target: String
        var headers: String
        var subprotocol: String
        var tls = false
    }

    /// Starts connecting; the outcome arrives through the callbacks.
    func start(_ t: Target, options: ClientOptions) -> Int32 {
        var out: OpaquePointer?
        let user = Unmanaged.passRetained(self).toOpaque()
        let rc = withOptionalCString(options.trustedCertificatesFile) { caFile in t.host.withCString { host in
            t.target.withCString { target in
                t.headers.withCString { headers in
                    t.subprotocol.withCString { proto -> Int32 in
                        var protos: [UnsafePointer<CChar>?] = [proto]
                        return protos.withUnsafeMutableBufferPointer { pp -> Int32 in
                            var o = clive_client_options()
                            o.host = host
                            o.port = t.port
                            o.target = target
                            o.subprotocols = UnsafePointer(pp.baseAddress)
                            o.subprotocol_count = 1
                            o.headers = headers
                            o.headers_len = t.headers.utf8.count
                            o.max_message = options.maxMessageSize
                            o.handshake_timeout_ms = UInt32(clamping: options.handshakeTimeout.milliseconds)
                            o.ping_interval_ms = UInt32(clamping: options.pingInterval.milliseconds)
                            o.idle_timeout_ms = UInt32(clamping: options.idleTimeout.milliseconds)
                            o.tls = t.tls ? 1 : 0
                            o.tls_ca_file = caFile
                            o.tls_insecure = options.verifyCertificate ? 0 : 1
                            o.callbacks.on_open = attemptOpened
                            o.callbacks.on_message = attemptMessage
                            o.callbacks.on_close = attemptClosed
                            o.callbacks.user = user
                            return clive_client_connect(&o, &out)
                        }
                    }
                }
            }
        } }
        if rc != 0 {
            Unmanaged<Attempt>.fromOpaque(user).release()
            return rc
        }
        core.attach(out, to: self)
        return 0
    }
}

private func attempt(_ user: UnsafeMutableRawPointer?) -> Attempt {
    Unmanaged<Attempt>.fromOpaque(user!).takeUnretainedValue()
}

private let attemptOpened: @convention(c) (OpaquePointer?, Int32, UnsafeMutableRawPointer?) -> Void = {
    handle, subprotocol, user in
    let a = attempt(user)
    a.core.opened(a, handle: handle, subprotocol: Int(subprotocol))
}

private let attemptMessage:
    @convention(c) (OpaquePointer?, Int32, UnsafePointer<UInt8>?, Int, UnsafeMutableRawPointer?) -> Void = {
        _, binary, data, len, user in
        let bytes = len > 0 ? Bytes(UnsafeBufferPointer(start: data, count: len)) : Bytes()
        let a = attempt(user)
        a.core.received(Frame(kind: binary != 0 ? .binary : .text, payload: bytes), on: a)
    }

private let attemptClosed:
    @convention(c) (
        OpaquePointer?, clive_client_close_kind, Int32, UnsafePointer<CChar>?, Int, Int32, UnsafeMutableRawPointer?
    ) -> Void = { _, kind, code, reason, reasonLen, status, user in
        let text = reasonLen > 0
            ? String(decoding: UnsafeRawBufferPointer(start: reason, count: reasonLen), as: UTF8.self) : ""
        let why: ClientError
        switch kind {
        case CLIVE_CLIENT_CONNECT_FAILED: why = .connectFailed(text)
        case CLIVE_CLIENT_HANDSHAKE_FAILED:
            why = status != 0 ? .rejected(status: Int(status), reason: text) : .handshakeFailed(text)
        case CLIVE_CLIENT_CLOSED_BY_SERVER: why = .closedByServer(code: Int(code), reason: text)
        case CLIVE_CLIENT_PROTOCOL: why = .protocolError(code: Int(code), reason: text)
        case CLIVE_CLIENT_IDLE: why = .serverSilent
        case CLIVE_CLIENT_CLOSED_BY_CLIENT: why = .closed
        default: why = .connectionLost(text)
        }
        let a = Unmanaged<Attempt>.fromOpaque(user!).takeRetainedValue()
        a.core.ended(a, why: why)
    }

/// body with a C string for s, or with NULL when s is nil.
private func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let s else { return body(nil) }
    return s.withCString { body($0) }
}
