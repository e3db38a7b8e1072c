import CLive

/// A certificate chain and its private key (PEM files) for a TLS listener:
/// `server.listen(host:port:tls:)`. TLS 1.2 and 1.3, ALPN `http/1.1`; the handshake runs on
/// the event loops and counts against `Options.handshakeTimeout`.
///
/// ```swift
/// let certificate = try TLSCertificate(certificateFile: "/etc/live/fullchain.pem",
///                                      keyFile: "/etc/live/privkey.pem")
/// try server.listen(host: "0.0.0.0", port: 8443, tls: certificate)
/// // after renewal (live-server does this on SIGHUP):
/// try certificate.reload()
/// ```
public final class TLSCertificate: Sendable {
    /// The C handle; immutable after init (the core swaps its context under its own lock).
    nonisolated(unsafe) let handle: OpaquePointer
    public let certificateFile: String
    public let keyFile: String

    /// Loads both files.
    /// - Throws: `ServerError` naming the file and the reason, e.g. "cannot open
    ///   certificate /etc/live/cert.pem: No such file or directory" or "cannot use key
    ///   ...: key values mismatch".
    public init(certificateFile: String, keyFile: String) throws {
        var message = [CChar](repeating: 0, count: 512)
        var handle: OpaquePointer?
        let rc = clive_tls_new(certificateFile, keyFile, &handle, &message, message.count)
        guard rc == CLIVE_OK.rawValue, let handle else {
            throw ServerError(rc, description: Self.text(message))
        }
        self.handle = handle
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }

    deinit { clive_tls_free(handle) }

    /// Reads the same two files again (a renewed certificate): new connections get it,
    /// open sessions keep theirs, nothing is dropped. On failure the certificate in use
    /// stays, and the error says why.
    public func reload() throws {
        var message = [CChar](repeating: 0, count: 512)
        let rc = clive_tls_reload(handle, &message, message.count)
        guard rc == CLIVE_OK.rawValue else { throw ServerError(rc, description: Self.text(message)) }
    }

    private static func text(_ message: [CChar]) -> String? {
        let s = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return s.isEmpty ? nil : s
    }
}
