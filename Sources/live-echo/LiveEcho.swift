// live-echo: echoes every WebSocket message unchanged (text as text, binary as binary) on
// any path, with the default limits, through Live's RawCodec. The end-to-end tests and
// external conformance suites (Autobahn|Testsuite's fuzzing client) are pointed at it.
import ArgumentParser
import Live
import LiveCommandLine
import ServiceLifecycle

@main
struct LiveEcho: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live-echo",
        abstract: "A WebSocket echo server on Live, for conformance and interop tests.")

    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(parsing: .unconditional, help: "Port to bind, 0...65535; 0 picks a free one (printed as PORT <n>).")
    var port = 9001
    @Option(help: "Event loops; 0 means one per usable CPU.") var eventLoops = 0
    @Flag(help: "Accept permessage-deflate (RFC 7692) from clients that offer it.") var deflate = false
    @OptionGroup var tls: TLSFlags

    func validate() throws {
        guard (0...65535).contains(port) else {
            throw ValidationError("--port must be 0...65535 (0 picks a free port), got \(port)")
        }
    }

    func run() async throws {
        var options = Options()
        options.codec = RawCodec()
        options.codecs = []
        options.eventLoops = eventLoops > 0 ? eventLoops : nil
        options.compression = deflate ? Options.Compression() : nil
        options.onMessage = { session, message in try? session.send(message) }
        let server = try Server(options: options)
        let certificate = try tls.listen(server, host: host, port: port)
        try server.start()
        // PORT is the first listener's (--port); with --tls-port, TLSPORT follows
        let line = "PORT \(server.port)" + (tls.tlsPort != nil ? "\nTLSPORT \(server.tlsPort)" : "")
        var services: [any Service] = [server, Announcement(line: line)]
        if let certificate { services.append(CertificateReloader(certificate: certificate, logger: options.logger)) }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint], logger: options.logger))
        try await group.run()
    }
}
