import Foundation
import Live
import LiveClient
import LiveRooms

struct Timeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// The first element of a sequence that satisfies predicate, within a generous bound (a
/// hang guard, not a speed requirement).
func first<S: AsyncSequence & Sendable>(
    _ sequence: S, _ what: String, timeout: Duration = .seconds(15),
    where predicate: @escaping @Sendable (S.Element) -> Bool
) async throws -> S.Element where S.Element: Sendable {
    try await withThrowingTaskGroup(of: S.Element?.self) { group in
        group.addTask {
            for try await e in sequence where predicate(e) { return e }
            return nil
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let found = try await group.next() ?? nil
        group.cancelAll()
        guard let found else { throw Timeout(what: what) }
        return found
    }
}

/// A live-server-like server (LiveRooms, presence on) on 127.0.0.1, running until stop().
final class RoomsServer: Sendable {
    let server: Server
    let task: Task<Void, Error>

    /// With tls, the server listens with that certificate only (wss://).
    init(port: Int = 0, tls: TLSCertificate? = nil, _ configure: (inout Options) -> Void = { _ in }) throws {
        var options = Options()
        options.eventLoops = 1
        options.logger.logLevel = .critical
        options.presence = PresenceOptions()
        options.closeTimeout = .seconds(2)
        configure(&options)
        server = try Rooms().makeServer(options: options)
        if let tls { try server.listen(port: port, tls: tls) } else { try server.listen(port: port) }
        let server = self.server
        task = Task { try await server.run() }
    }

    var port: Int { server.port }
    var url: URL { URL(string: "ws://127.0.0.1:\(port)/ws")! }
    var secureURL: URL { URL(string: "wss://localhost:\(server.tlsPort)/ws")! }

    func stop() async throws {
        server.shutdown()
        try await task.value
    }
}

/// A lock-protected log that escaping closures (handlers, predicates) may append to.
final class Log<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [T] = []

    func append(_ item: T) { lock.withLock { items.append(item) } }
    var all: [T] { lock.withLock { items } }
}
