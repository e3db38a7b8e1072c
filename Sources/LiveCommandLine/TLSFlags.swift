import ArgumentParser
import Live

/// --tls-cert, --tls-key and --tls-port, shared by live-server and live-echo.
public struct TLSFlags: ParsableArguments {
    @Option(help: "PEM certificate chain to serve TLS with (https://, wss://); needs --tls-key. SIGHUP reloads it.")
    public var tlsCert: String?
    @Option(help: "PEM private key of --tls-cert.")
    public var tlsKey: String?
    @Option(parsing: .unconditional,
            help: "Serve TLS on this port and keep --port plain (e.g. for health checks); without it, --port speaks TLS.")
    public var tlsPort: Int?

    public init() {}

    public var enabled: Bool { tlsCert != nil }

    public func validate() throws {
        if (tlsCert == nil) != (tlsKey == nil) {
            throw ValidationError("--tls-cert and --tls-key go together")
        }
        if let tlsPort {
            guard tlsCert != nil else { throw ValidationError("--tls-port needs --tls-cert and --tls-key") }
            guard (0...65535).contains(tlsPort) else {
                throw ValidationError("--tls-port must be 0...65535 (0 picks a free port), got \(tlsPort)")
            }
        }
    }

    /// Binds the server's listeners: --port plain, or --port with TLS, or both with
    /// --tls-port. Returns the certificate (for `CertificateReloader`), or nil without TLS.
    /// Throws when a file cannot be used, naming it and the reason.
    public func listen(_ server: Server, host: String, port: Int) throws -> TLSCertificate? {
        guard let tlsCert, let tlsKey else {
            try server.listen(host: host, port: port)
            return nil
        }
        let certificate = try TLSCertificate(certificateFile: tlsCert, keyFile: tlsKey)
        if let tlsPort {
            try server.listen(host: host, port: port)
            try server.listen(host: host, port: tlsPort, tls: certificate)
        } else {
            try server.listen(host: host, port: port, tls: certificate)
        }
        return certificate
    }
}
