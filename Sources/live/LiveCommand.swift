// live: a command-line client for live-server (LiveRooms conventions) on LiveClient.
//
//   live sub ws://127.0.0.1:8080/ws room:lobby          # one JSON line per message
//   tail -f app.log | live pub ws://127.0.0.1:8080/ws logs:app
//   live who ws://127.0.0.1:8080/ws room:lobby
//
// Exit status: 0 on success; 1 when the connection is refused or lost for good, the server
// refuses a request (its reason is printed), or a request times out; 64 for bad usage.
import ArgumentParser
import Foundation
import Live
import LiveClient

#if canImport(Glibc)
    import Glibc
#endif

@main
struct LiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live",
        abstract: "Subscribe, publish and ask who is there, on a Live server (live-server's conventions).",
        subcommands: [Sub.self, Pub.self, Who.self])
}

enum CodecName: String, ExpressibleByArgument, CaseIterable {
    case json, msgpack

    var codec: any Codec { self == .json ? JSONCodec() : MessagePackCodec() }
}

struct Connection: ParsableArguments {
    @Argument(help: "The server's WebSocket URL, e.g. ws://127.0.0.1:8080/ws (auth may go in its query).")
    var url: String
    @Option(help: "The codec: json or msgpack.") var codec: CodecName = .json
    @Option(name: .customLong("header"), help: "A request header, \"Name: value\" (repeat it).")
    var headers: [String] = []
    @Option(help: "wss://: a PEM file of certificates to trust instead of the system's (a private CA, a development server's own).")
    var caFile: String?
    @Flag(help: "wss://: accept any server certificate (a development server only).") var insecure = false

    func validate() throws {
        for h in headers where !h.contains(":") { throw ValidationError("--header must be \"Name: value\": \(h)") }
        guard URL(string: url) != nil else { throw ValidationError("not a URL: \(url)") }
    }

    func connect(reconnect: Bool = true) async throws -> LiveClient {
        var fields: [String: String] = [:]
        for h in headers {
            let i = h.firstIndex(of: ":")!
            fields[String(h[..<i]).trimmingCharacters(in: .whitespaces)] =
                String(h[h.index(after: i)...]).trimmingCharacters(in: .whitespaces)
        }
        var options = ClientOptions()
        options.reconnect = reconnect
        options.trustedCertificatesFile = caFile
        options.verifyCertificate = !insecure
        return try await LiveClient.connect(to: URL(string: url)!, codec: codec.codec, headers: fields, options: options)
    }
}

/// Prints "live: <why>" on standard error and exits 1.
func fail(_ error: Error) -> Never {
    FileHandle.standardError.write("live: \(error)\n".data(using: .utf8)!)
    exit(1)
}

/// Writes one line to standard output at once (a pipe reader sees each message as it comes).
func emit(_ line: String) {
    FileHandle.standardOutput.write((line + "\n").data(using: .utf8)!)
}

func note(_ text: String) {
    FileHandle.standardError.write("live: \(text)\n".data(using: .utf8)!)
}

/// The JSON text of a body: as it is when it is JSON (always, under the JSON codec), else
/// as a JSON string of its UTF-8 text. An empty body is null under JSON (no body) and the
/// empty string under MessagePack (the bytes of an empty line).
func jsonText(_ body: Bytes, codec: CodecName) -> String {
    if body.isEmpty { return codec == .json ? "null" : "\"\"" }
    if (try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])) != nil { return body.string }
    let data = try! JSONSerialization.data(withJSONObject: body.string, options: [.fragmentsAllowed])
    return String(decoding: data, as: UTF8.self)
}

/// What to publish for a text: the text itself when it is one JSON value, else the text as
/// a JSON string (so `live pub URL T hello` and log lines just work). Under MessagePack the
/// body is the text's bytes as they are.
func messageBody(for text: String, codec: CodecName) -> Bytes {
    if codec == .msgpack { return Bytes(text) }
    if let data = text.data(using: .utf8),
        (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) != nil
    {
        return Bytes(text)
    }
    let data = try! JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed])
    return Bytes(Array(data))
}

func jsonString(_ s: String) -> String {
    String(decoding: try! JSONSerialization.data(withJSONObject: s, options: [.fragmentsAllowed]), as: UTF8.self)
}

struct Sub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print each message of the topics as one line of JSON, until interrupted; reconnects.")

    @OptionGroup var connection: Connection
    @Argument(help: "Topics to join.") var topics: [String]
    @Flag(help: "Print only each message's body.") var bodyOnly = false

    func validate() throws {
        if topics.isEmpty { throw ValidationError("name at least one topic") }
    }

    func run() async throws {
        let client: LiveClient
        do { client = try await connection.connect() } catch { fail(error) }
        let messages = client.messages
        for topic in topics {
            do { try await client.join(topic) } catch { fail(error) }
        }
        // the connection's fate on standard error; the end of it ends the command
        let states = client.states
        Task {
            for await s in states {
                switch s {
                case .disconnected(let why): note("disconnected: \(why); reconnecting")
                case .open: break
                case .closed(let why): fail(why ?? ClientError.closed)
                default: break
                }
            }
        }
        for await m in messages where m.type == "message" {
            if bodyOnly {
                emit(connection.codec == .json ? m.body.string : jsonText(m.body, codec: connection.codec))
            } else {
                emit(#"{"type":"message","topic":\#(jsonString(m.topic)),"body":\#(jsonText(m.body, codec: connection.codec))}"#)
            }
        }
    }
}

struct Pub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish BODY to TOPIC, or with no BODY each line of standard input as one message.",
        discussion: """
            A BODY (or line) that is one JSON value goes as that value; any other text goes as a \
            JSON string. Exits non-zero with the server's reason when a publish is refused.
            """)

    @OptionGroup var connection: Connection
    @Argument(help: "The topic.") var topic: String
    @Argument(help: "The message body; none: read lines from standard input.") var body: String?
    @Option(help: ArgumentHelp(
        "Publish at most this many messages a second (0: as fast as the server answers).",
        discussion: "live-server drops what a session sends over its --rate-limit (100 a second by default), and a dropped publish is never answered: pace a fast stream below it."))
    var rate = 0.0

    func validate() throws {
        if rate < 0 { throw ValidationError("--rate must be 0 or more") }
    }

    func run() async throws {
        let client: LiveClient
        do { client = try await connection.connect() } catch { fail(error) }
        if let body {
            do { try await client.publish(messageBody(for: body, codec: connection.codec), to: topic) } catch {
                fail(error)
            }
            await client.close()
            return
        }
        let clock = ContinuousClock()
        let gap: Duration = rate > 0 ? .nanoseconds(Int64(1e9 / rate)) : .zero
        var next = clock.now
        for await line in standardInputLines() {
            if gap > .zero {
                try await clock.sleep(until: next)
                next = max(next.advanced(by: gap), clock.now)
            }
            try await publish(line, with: client)
        }
        await client.close()
    }

    /// Publishes one line; between connections, waits for the next one and tries again.
    func publish(_ line: String, with client: LiveClient) async throws {
        while true {
            do {
                try await client.publish(messageBody(for: line, codec: connection.codec), to: topic)
                return
            } catch let error as ClientError where error.isConnectionLoss {
                note("\(error); publishing again once reconnected")
                for await s in client.states {
                    if s == .open { break }
                    if case .closed(let why) = s { fail(why ?? ClientError.closed) }
                }
            } catch {
                fail(error)
            }
        }
    }
}

/// Lines of standard input, read on a thread of their own (reading blocks).
func standardInputLines() -> AsyncStream<String> {
    let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingOldest(1024))
    let thread = Thread {
        while let line = readLine(strippingNewline: true) {
            while case .dropped = continuation.yield(line) { usleep(1000) }  // the publisher is behind: wait
        }
        continuation.finish()
    }
    thread.start()
    return stream
}

struct Who: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print who is subscribed to TOPIC (a JSON array; with --count, how many).")

    @OptionGroup var connection: Connection
    @Argument(help: "The topic.") var topic: String
    @Flag(help: "Print how many sessions are subscribed instead.") var count = false

    func run() async throws {
        let client: LiveClient
        do { client = try await connection.connect(reconnect: false) } catch { fail(error) }
        do {
            if count {
                emit(String(try await client.count(topic)))
            } else {
                emit(try await client.who(topic).string)
            }
        } catch {
            fail(error)
        }
        await client.close()
    }
}
