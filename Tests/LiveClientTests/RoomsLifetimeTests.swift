// A server made by Rooms is freed, with its Rooms, once its owner lets go. The server held
// Rooms (its onMessage) and Rooms held the server's core back: a cycle that leaked every
// such server, found by LiveClientTests under AddressSanitizer.

import Foundation
import Live
import LiveClient
import LiveRooms
import Testing

@Suite struct RoomsLifetimeTests {
    @Test func aServerMadeByRoomsIsFreedWithItsRooms() async throws {
        weak var freedRooms: Rooms?
        do {
            var options = Options()
            options.eventLoops = 1
            options.logger.logLevel = .critical
            let rooms = Rooms()
            freedRooms = rooms
            let server = try rooms.makeServer(options: options)
            try server.listen(port: 0)
            let task = Task { try await server.run() }
            let c = try await LiveClient.connect(to: URL(string: "ws://127.0.0.1:\(server.port)/")!)
            try await c.join("t")
            try await c.publish("1", to: "t")
            await c.close()
            server.shutdown()
            try await task.value
        }
        #expect(freedRooms == nil)
    }
}
