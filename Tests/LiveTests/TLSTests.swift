// TLS listeners through the Swift API: `TLSCertificate`, `listen(host:port:tls:)` beside a
// plain listener, `reload()` while the server runs, errors that name the file, and a
// client's failed handshake logged at debug level. The client is Python's `websockets`
// over `ssl` (see InteropTests for where the interpreter comes from).

import Foundation
import Live
import Logging
import Testing

/// A self-signed P-256 certificate for localhost, made with the openssl command.
private func makeCertificate(in directory: URL, name: String) throws -> (cert: String, key: String) {
    let cert = directory.appendingPathComponent("\(name).pem").path
    let key = directory.appendingPathComponent("\(name).key").path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                         "-nodes", "-days", "2", "-subj", "/CN=\(name)", "-keyout", key, "-out", cert]
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    try #require(process.terminationStatus == 0, "openssl failed")
    return (cert, key)
}

private func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("live-tls-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

private let tlsScript = #"""
import socket, ssl, sys
from websockets.sync.client import connect

tls_port, plain_port, pem = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with connect(f"wss://127.0.0.1:{tls_port}/", ssl=ctx, open_timeout=10) as ws:
    der = ws.socket.getpeercert(binary_form=True)
    print("cert", "same" if der == ssl.PEM_cert_to_DER_cert(open(pem).read()) else "other")
    ws.send("hi over tls")
    print("tls", ws.recv(timeout=10))
with connect(f"ws://127.0.0.1:{plain_port}/", open_timeout=10) as ws:
    ws.send("hi in plain")
    print("plain", ws.recv(timeout=10))
with socket.create_connection(("127.0.0.1", int(tls_port)), timeout=10) as s:
    s.sendall(b"\x16\x03\x01\x00\x08not a hello at all")
    while s.recv(4096):
        pass
    print("garbage closed")
"""#

/// Keeps what is logged, to check levels.
private struct RecordingLogHandler: LogHandler {
    let records: Recorder<String>
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        records.append("\(level) \(message)")
    }
}

@Suite(.enabled(if: python != nil, "no Python with websockets found (LIVE_TEST_PYTHON, .venv, /tmp/venv)"))
struct TLSTests {
    @Test func plainAndTLSListenersEchoAndACertificateReloads() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = try makeCertificate(in: dir, name: "a")
        let b = try makeCertificate(in: dir, name: "b")
        let cert = dir.appendingPathComponent("live.pem").path, key = dir.appendingPathComponent("live.key").path
        try FileManager.default.copyItem(atPath: a.cert, toPath: cert)
        try FileManager.default.copyItem(atPath: a.key, toPath: key)

        let logs = Recorder<String>()
        var options = Options()
        options.eventLoops = 1
        options.codec = RawCodec()
        options.codecs = []
        options.logger = Logger(label: "tls-test") { _ in RecordingLogHandler(records: logs) }
        options.onMessage = { session, message in try? session.send(message) }
        let server = try Server(options: options)
        let certificate = try TLSCertificate(certificateFile: cert, keyFile: key)
        try server.listen(host: "127.0.0.1", port: 0)
        try server.listen(host: "127.0.0.1", port: 0, tls: certificate)
        #expect(server.tlsPort != 0 && server.tlsPort != server.port)
        #expect(throws: ServerError.self) { try server.listen(host: "127.0.0.1", port: 0, tls: certificate) }
        try server.start()

        var (status, out, err) = try await runPython(tlsScript, [String(server.tlsPort), String(server.port), a.cert])
        #expect(status == 0, "python failed: \(err)")
        #expect(out == "cert same\ntls hi over tls\nplain hi in plain\ngarbage closed\n")
        let failed = try await logs.wait("the failed handshake's log line") { $0.contains { $0.contains("TLS handshake failed") } }
        #expect(failed.filter { $0.contains("TLS handshake failed") }.allSatisfy { $0.hasPrefix("debug ") }, "\(failed)")

        // renewal: new files, reload, and the next connection gets the new certificate
        try FileManager.default.removeItem(atPath: cert)
        try FileManager.default.removeItem(atPath: key)
        try FileManager.default.copyItem(atPath: b.cert, toPath: cert)
        try FileManager.default.copyItem(atPath: b.key, toPath: key)
        try certificate.reload()
        (status, out, err) = try await runPython(tlsScript, [String(server.tlsPort), String(server.port), b.cert])
        #expect(status == 0, "python failed: \(err)")
        #expect(out.hasPrefix("cert same\n"), "\(out)")
        server.shutdown()
        try await server.run()
    }

    @Test func certificateErrorsNameTheFileAndTheReason() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = try makeCertificate(in: dir, name: "a")
        let b = try makeCertificate(in: dir, name: "b")
        let missing = dir.appendingPathComponent("missing.pem").path
        do {
            _ = try TLSCertificate(certificateFile: missing, keyFile: a.key)
            Issue.record("a missing certificate file was accepted")
        } catch let error as ServerError {
            #expect(error.description.contains("cannot open certificate \(missing)"), "\(error)")
        }
        do {
            _ = try TLSCertificate(certificateFile: a.cert, keyFile: b.key)
            Issue.record("a key of another certificate was accepted")
        } catch let error as ServerError {
            #expect(error.description.contains("cannot use key \(b.key)"), "\(error)")
        }
        // a failed reload keeps the certificate and says why
        let certificate = try TLSCertificate(certificateFile: a.cert, keyFile: a.key)
        try "garbage\n".write(toFile: a.cert, atomically: true, encoding: .utf8)
        #expect(throws: ServerError.self) { try certificate.reload() }
    }
}
