import CLive
import Synchronization

/// A request whose answer an `onAuth` or `onHTTP` task is working out.
///
/// It is the C session's user pointer (retained) while the task runs, so that exactly one
/// of two parties detaches it with `clive_session_take_user`: the task, which then answers
/// the request, or `on_close` (the connection ended or the handshake timed out), which
/// then cancels the task: an app's authorisation stops as soon as nobody waits for it.
final class PendingRequest: @unchecked Sendable {
    // @unchecked: `handle` is used only through clive functions documented "any thread".
    /// Retained until the task ends (the C session stays a valid handle for it).
    let handle: OpaquePointer
    private let task = Locked<Task<Void, Never>?>(nil)

    private init(_ handle: OpaquePointer) {
        self.handle = handle
    }

    /// Attaches a pending request to the session and starts `work` for it. On the loop
    /// thread, in `on_request`: `on_close` cannot run before it returns.
    static func start(_ handle: OpaquePointer, _ work: @escaping @Sendable (PendingRequest) async -> Void) {
        clive_session_retain(handle)
        let pending = PendingRequest(handle)
        // Attached before the task starts, so that the task's takeBack finds it.
        clive_session_set_user(handle, Unmanaged.passRetained(pending).toOpaque())
        let task = Task {
            defer { clive_session_release(pending.handle) }
            await work(pending)
        }
        pending.task.withLock { $0 = task }
    }

    /// Detaches this object from the session, for the task about to answer: false when
    /// `on_close` came first (the connection is gone and nothing should be sent).
    func takeBack() -> Bool {
        guard let p = clive_session_take_user(handle) else { return false }
        Unmanaged<PendingRequest>.fromOpaque(p).release()
        return true
    }

    /// Cancels the task (`on_close` detached this object).
    func cancel() {
        task.withLock { $0 }?.cancel()
    }
}
