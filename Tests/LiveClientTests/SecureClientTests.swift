import Foundation
import Live
import LiveClient
import Testing

/// A self-signed certificate for localhost in a fresh directory (the openssl command):
/// its own CA, so a client that trusts the file verifies the server.
private func localhostCertificate() throws -> (cert: String, key: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("live-wss-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let (cert, key) = (dir.appendingPathComponent("cert.pem").path, dir.appendingPathComponent("key.pem").path)
    let openssl = Process()
    openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    openssl.arguments = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                         "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                         "-keyout", key, "-out", cert]
    openssl.standardError = FileHandle.nullDevice
    try openssl.run()
    openssl.waitUntilExit()
    try #require(openssl.terminationStatus == 0)
    return (cert, key)
}

/// LiveClient over wss:// against a server with a TLS listener.
struct SecureClientTests {
    @Test func wssWithTheServersCertificateTrusted() async throws {
        let files = try localhostCertificate()
        let srv = try RoomsServer(tls: try TLSCertificate(certificateFile: files.cert, keyFile: files.key))
        var options = ClientOptions()
        options.trustedCertificatesFile = files.cert
        let a = try await LiveClient.connect(to: srv.secureURL, options: options)
        let inbox = a.messages(for: "room:tls")
        try await a.join("room:tls")
        try await a.publish(#"{"text":"over tls"}"#, to: "room:tls")
        let m = try await first(inbox, "the published message") { $0.type == "message" }
        #expect(m.body.string == #"{"text":"over tls"}"#)
        await a.close()
        try await srv.stop()
    }

    @Test func anUntrustedCertificateFailsTheHandshakeUnlessVerificationIsOff() async throws {
        let files = try localhostCertificate()
        let srv = try RoomsServer(tls: try TLSCertificate(certificateFile: files.cert, keyFile: files.key))
        var options = ClientOptions()
        options.reconnect = false
        // the system's trust store does not know a self-signed certificate
        do {
            _ = try await LiveClient.connect(to: srv.secureURL, options: options)
            Issue.record("an unverifiable certificate was accepted")
        } catch ClientError.handshakeFailed(let why) {
            #expect(why.contains("certificate verify failed"), "\(why)")
        }
        options.verifyCertificate = false
        let c = try await LiveClient.connect(to: srv.secureURL, options: options)
        #expect(try await c.count("anything") == 0)
        await c.close()
        try await srv.stop()
    }
}
