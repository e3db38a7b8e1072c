// A server must be freed when the app lets go of it, even when its handlers keep sessions.

@testable import Live
import Synchronization
import Testing

@Suite struct ReleaseTests {
    /// Regression: `Session` held its server strongly, so handlers that keep sessions (the
    /// usual dictionary of who is connected, captured by `onMessage`) formed a cycle
    /// server -> options -> handler state -> session -> server, and a dropped server, its
    /// event loops' buffers and every session leaked (LeakSanitizer: 12.8 MB over the suite).
    @Test func aServerWhoseHandlersKeepSessionsIsFreed() async throws {
        final class Kept: Sendable {
            let sessions = Locked<[Session]>([])
        }
        let kept = Kept()
        weak var core: ServerCore?
        do {
            // (TestServer's own event log keeps every session too, the same pattern)
            let ts = try TestServer(onMessage: { _, session, message in
                kept.sessions.withLock { $0.append(session) }
                try? session.send(message)
            })
            core = ts.server.core
            let client = try await WSClient.connect(port: ts.port)
            try client.send("hello")
            _ = try await client.receiveMessage()
            try await ts.stop(client)
        }
        // the loops have stopped and the test's references are gone: only the kept session
        // could still hold the server
        #expect(kept.sessions.withLock { $0.count } == 1)
        #expect(core == nil, "the server outlived its last reference")
    }
}
