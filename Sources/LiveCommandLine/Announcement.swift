import Foundation
import Logging
import ServiceLifecycle

/// A service that prints where a server listens once its service group runs, which is after
/// the group has installed its signal handlers: a script that signals the moment it reads
/// the line gets a graceful shutdown, never the signal's default action. Shared by the
/// executables (live-server, live-echo).
public struct Announcement: Service {
    let line: String
    let logger: Logger?

    public init(line: String, logger: Logger? = nil) {
        self.line = line
        self.logger = logger
    }

    public func run() async throws {
        logger?.notice("\(line)")
        // unbuffered, so that a script reading the pipe sees the line at once
        FileHandle.standardOutput.write("\(line)\n".data(using: .utf8)!)
        try? await gracefulShutdown()
    }
}
