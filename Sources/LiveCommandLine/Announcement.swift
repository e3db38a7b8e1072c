import Foundation
import ServiceLifecycle

/// A service that prints where a server listens once its service group runs, which is after
/// the group has installed its signal handlers: a script that signals the moment it reads
/// the line gets a graceful shutdown, never the signal's default action. Shared by the
/// executables (live-server, live-echo). The line goes to standard output only, once: it
/// is what scripts read, and logging it as well printed it twice on a terminal.
public struct Announcement: Service {
    let line: String

    public init(line: String) {
        self.line = line
    }

    public func run() async throws {
        // unbuffered, so that a script reading the pipe sees the line at once
        FileHandle.standardOutput.write("\(line)\n".data(using: .utf8)!)
        try? await gracefulShutdown()
    }
}
