// Interoperability with a real third-party client: Python's `websockets` (17.x).
//
// The Python interpreter comes from $LIVE_TEST_PYTHON, else the repository's `.venv`, else
// /tmp/venv; the tests are skipped when none exists. MessagePack is hand-encoded in the
// script so that no extra package is needed.

import Foundation
import Live
import Testing

private let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

let python: String? = {
    var candidates: [String] = []
    if let env = ProcessInfo.processInfo.environment["LIVE_TEST_PYTHON"], !env.isEmpty { candidates.append(env) }
    candidates.append(repositoryRoot.appendingPathComponent(".venv/bin/python").path)
    candidates.append("/tmp/venv/bin/python")
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}()

/// Runs a Python script with arguments; returns its exit status and standard output.
func runPython(_ script: String, _ arguments: [String]) async throws -> (Int32, String, String) {
    let python = try #require(python)
    return try await offPool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script] + arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // read before waiting, so a full pipe cannot stall the script
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}

private let msgpackScript = #"""
import sys
from websockets.sync.client import connect

def s(b):
    assert len(b) < 32
    return bytes([0xa0 | len(b)]) + b

body = bytes([0x00, 0x01, 0xff]) + b"x" * 200
msg = bytes([0x94]) + s(b"echo") + s(b"py") + s(b"r1") + bytes([0xc4, len(body)]) + body
with connect(f"ws://127.0.0.1:{sys.argv[1]}/py?lang=python", subprotocols=["live.v1.msgpack"], open_timeout=10) as ws:
    print("subprotocol", ws.subprotocol)
    ws.send(msg)
    reply = ws.recv(timeout=10)
    print("kind", "binary" if isinstance(reply, bytes) else "text")
    print("same", reply == msg)
    print("reply", reply.hex() if isinstance(reply, bytes) else reply)
    ws.close(code=1000, reason="done")
"""#

private let jsonScript = #"""
import sys, json
from websockets.sync.client import connect

with connect(f"ws://127.0.0.1:{sys.argv[1]}/", open_timeout=10) as ws:
    print("subprotocol", ws.subprotocol)
    ws.send(json.dumps({"type": "echo", "topic": "py", "body": {"a": [1, "\u00e9"]}}))
    reply = ws.recv(timeout=10)
    print("reply", json.dumps(json.loads(reply), sort_keys=True, ensure_ascii=False))
    ws.close(code=4000, reason="bye")
"""#

@Suite(.enabled(if: python != nil, "no Python with websockets found (LIVE_TEST_PYTHON, .venv, /tmp/venv)"))
struct InteropTests {
    @Test func pythonClientNegotiatesMessagePackAndGetsAnEcho() async throws {
        let ts = try TestServer()
        let (status, out, err) = try await runPython(msgpackScript, [String(ts.port)])
        #expect(status == 0, "python failed: \(err)")
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.contains("subprotocol live.v1.msgpack"))
        #expect(lines.contains("kind binary"))
        #expect(lines.contains("same True"), "\(out)")

        let (session, message) = try #require(try await ts.waitForMessage("echo").first)
        #expect(session.subprotocol == "live.v1.msgpack")
        #expect(session.codec.name == "live.v1.msgpack")
        #expect(message.topic == "py")
        #expect(message.ref == "r1")
        #expect(Array(message.body) == [0x00, 0x01, 0xff] + Array(repeating: UInt8(ascii: "x"), count: 200))
        #expect(try await ts.waitForClose(of: session) == .clientClosed(code: 1000, reason: "done"))
        try await ts.stop()
    }

    @Test func pythonClientSpeaksJSONByDefault() async throws {
        let ts = try TestServer()
        let (status, out, err) = try await runPython(jsonScript, [String(ts.port)])
        #expect(status == 0, "python failed: \(err)")
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.contains("subprotocol None"))
        #expect(lines.contains(#"reply {"body": {"a": [1, "é"]}, "topic": "py", "type": "echo"}"#), "\(out)")
        let (session, message) = try #require(try await ts.waitForMessage("echo").first)
        #expect(message.body.string == #"{"a": [1, "\u00e9"]}"#, "the body's bytes as sent")
        #expect(try await ts.waitForClose(of: session) == .clientClosed(code: 4000, reason: "bye"))
        try await ts.stop()
    }
}
