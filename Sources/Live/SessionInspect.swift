import CLive

extension Session {
    /// What a session holds at one moment: its send queue and its topics.
    public struct Snapshot: Sendable, Hashable {
        /// False when the session had closed by the time its event loop looked (then
        /// everything else is empty).
        public var isOpen: Bool
        /// Frames waiting in its send queue (at most `Options.queueSize`).
        public var queuedFrames: Int
        /// Bytes waiting in its send queue (at most `Options.queueBytes`).
        public var queuedBytes: Int
        /// The topics it is subscribed to, in no particular order.
        public var topics: [String]
    }

    /// Takes a snapshot of the session's queue depth and topics on its event loop (so that
    /// it is consistent with the session's own calls before it), e.g. to find the client
    /// behind a memory spike or to cap what one user subscribes to. From `onMessage` it
    /// is taken at once; from elsewhere it waits for the loop's next turn.
    /// - Throws: `SessionError.outOfMemory` when the request could not be made.
    public func inspect() async throws -> Snapshot {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Snapshot, Error>) in
            let box = Unmanaged.passRetained(InspectContinuation(c)).toOpaque()
            if clive_session_inspect(handle, liveOnInspect, box) != CLIVE_OK.rawValue {
                // the callback will not run: the box is still ours
                Unmanaged<InspectContinuation>.fromOpaque(box).release()
                c.resume(throwing: SessionError.outOfMemory)
            }
        }
    }
}

/// The continuation `clive_session_inspect`'s callback resumes (exactly once).
private final class InspectContinuation: Sendable {
    let continuation: CheckedContinuation<Session.Snapshot, Error>
    init(_ c: CheckedContinuation<Session.Snapshot, Error>) { continuation = c }
}

private let liveOnInspect: @convention(c) (OpaquePointer?, UnsafePointer<clive_session_info>?, UnsafeMutableRawPointer?) -> Void = {
    _, info, context in
    let box = Unmanaged<InspectContinuation>.fromOpaque(context!).takeRetainedValue()
    guard let info = info?.pointee, info.open != 0 else {
        box.continuation.resume(returning: Session.Snapshot(isOpen: false, queuedFrames: 0, queuedBytes: 0, topics: []))
        return
    }
    var topics: [String] = []
    topics.reserveCapacity(info.topic_count)
    for i in 0..<info.topic_count {
        guard let name = info.topics[i] else { continue }
        topics.append(String(decoding: UnsafeRawBufferPointer(start: name, count: info.topic_lens[i]), as: UTF8.self))
    }
    box.continuation.resume(returning: Session.Snapshot(
        isOpen: true, queuedFrames: Int(info.queued_frames), queuedBytes: info.queued_bytes, topics: topics))
}
