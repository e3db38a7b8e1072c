/// Why a session ended, as reported to `onClose`.
public enum CloseReason: Sendable, Hashable {
    /// The client sent a close frame (1005 when it gave no code).
    case clientClosed(code: UInt16, reason: String)
    /// `Session.close(code:reason:)` was called.
    case serverClosed(code: UInt16, reason: String)
    /// The client broke RFC 6455: 1002 protocol error, 1007 invalid UTF-8, 1009 too big.
    case protocolError(code: UInt16)
    /// A frame the session's codec could not decode (closed with 1007, or 1003 for the
    /// wrong frame kind), or a message whose `ref` was longer than `Options.maxRefLength`
    /// (closed with 1008 "ref too long"; the string starts with "ref too long"). Both are
    /// messages the server refused to take in, before `onMessage` saw them.
    case decodeError(String)
    /// The session's send queue overflowed: it read too slowly (closed with 4008).
    case queueOverflow
    /// Nothing was heard from the client within the idle timeout (closed with 1001).
    case idleTimeout
    /// The client stayed over its rate limit past the grace period (closed with 1008).
    case rateLimited
    /// The server shut down (closed with 1001).
    case shutdown
    /// The TCP connection ended without a close frame.
    case connectionLost
}

/// The close code sent when a session's queue overflows ("slow consumer"), in the private
/// range so a browser's `CloseEvent.code` shows it.
public let queueOverflowCloseCode: UInt16 = UInt16(CLIVE_CLOSE_SLOW)

import CLive
