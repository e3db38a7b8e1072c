// live-echo: echoes every WebSocket message unchanged (text as text, binary as binary) on
// any path, with the core's default limits. The end-to-end tests and external conformance
// suites (Autobahn|Testsuite's fuzzing client) are pointed at it.
//
// It talks to the C core directly for now; it moves onto Live's RawCodec with the Swift API.
import ArgumentParser
import CLive
import Dispatch
import Foundation

@main
struct LiveEcho: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live-echo",
        abstract: "A WebSocket echo server on the Live core, for conformance and interop tests.")

    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "Port to bind; 0 picks a free one (printed as PORT <n>).") var port: UInt16 = 9001
    @Option(help: "Event loops; 0 means one per usable CPU.") var loops: UInt32 = 0

    func run() throws {
        var options = clive_options()
        options.loops = loops
        options.callbacks.on_request = { session, request, _ in
            guard let session, let request else { return }
            if request.pointee.is_upgrade != 0 {
                clive_session_accept(session, 0)
            } else {
                let body = Array("this endpoint speaks WebSocket\n".utf8)
                clive_session_respond(session, 426, nil, 0, body, body.count)
            }
        }
        options.callbacks.on_message = { session, binary, data, length, _ in
            guard let session, let frame = clive_frame_new(binary, data, length) else { return }
            clive_session_send(session, frame)
            clive_frame_release(frame)
        }
        var server: OpaquePointer?
        try check(clive_server_new(&options, &server))
        try check(clive_server_listen(server, host, port))
        try check(clive_server_start(server))
        // unbuffered, so that a test reading the pipe sees the port at once
        FileHandle.standardOutput.write("PORT \(clive_server_port(server))\n".data(using: .utf8)!)
        FileHandle.standardError.write(
            "live-echo: ws://\(host):\(clive_server_port(server))/\n".data(using: .utf8)!)

        let stop = { clive_server_shutdown(server) }
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler(handler: stop)
            source.resume()
            sources.append(source)
        }
        clive_server_wait(server)
        clive_server_free(server)
        _ = sources
    }

    private func check(_ code: Int32) throws {
        if code != 0 { throw ValidationError(String(cString: clive_strerror(code))) }
    }
}
