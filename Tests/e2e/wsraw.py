"""A raw-socket WebSocket client for the end-to-end tests.

It speaks just enough HTTP/1.1 and RFC 6455 to drive a server into every corner: it sends
upgrade requests with any headers (or any bytes at all), builds client frames with any
opcode, FIN/RSV bits, mask flag and length encoding (including lying lengths), and parses
what the server sends back (HTTP response heads, frames, close codes and reasons).

Nothing here sleeps: every read has a deadline, and a read that runs out of time raises
``TimeoutError`` (a test failure, never a silent pass).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import time
from dataclasses import dataclass, field

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

DEFAULT_TIMEOUT = 10.0  # a generous upper bound for CI, never an assertion about speed


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept value a server must answer `key` with (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


def wait_for(pred, timeout: float = 10.0, interval: float = 0.02, what: str | None = None):
    """Polls `pred` (a real observable) every `interval` seconds until it returns a truthy
    value, which is returned; raises AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}; last value {last!r}")
        time.sleep(interval)  # the polling period of wait_for, not synchronisation


# --- frames -----------------------------------------------------------------------------


def build_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    key: bytes | None = None,
    length: int | None = None,
    length_form: int | None = None,
) -> bytes:
    """A client frame.

    rsv: the three RSV bits as a number 0-7 (4 = RSV1, 2 = RSV2, 1 = RSV3).
    mask: whether to set the MASK bit and mask the payload.
    length: the length written into the header (default: len(payload)); lets a test lie.
    length_form: 7, 16 or 64 to force an encoding (default: the minimal one).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    if length_form is None:
        length_form = 7 if n < 126 else 16 if n <= 0xFFFF else 64
    if length_form == 7:
        head = struct.pack("!BB", b0, mbit | n)
    elif length_form == 16:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    elif length_form == 64:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    else:
        raise ValueError(length_form)
    if not mask:
        return head + payload
    if key is None:
        key = os.urandom(4)
    return head + key + mask_bytes(payload, key)


def mask_bytes(data: bytes, key: bytes) -> bytes:
    if not data:
        return b""
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def close_payload(code: int | None = None, reason: bytes | str = b"") -> bytes:
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes

    @property
    def code(self) -> int | None:
        """The close code (None for an empty close payload)."""
        assert self.opcode == OP_CLOSE, self
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def reason(self) -> str:
        assert self.opcode == OP_CLOSE, self
        return self.payload[2:].decode("utf-8")

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")

    def __repr__(self) -> str:
        p = self.payload if len(self.payload) <= 64 else self.payload[:64] + b"..."
        return f"Frame(op={self.opcode:#x}, fin={self.fin}, rsv={self.rsv}, len={len(self.payload)}, {p!r})"


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first header named `name` (case-insensitive), or None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


class ConnectionClosed(Exception):
    """The server closed TCP while a read still wanted bytes."""


# --- the client --------------------------------------------------------------------------


class RawClient:
    def __init__(self, port: int, host: str = "127.0.0.1", *, rcvbuf: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT, tls=None):
        """tls: an ssl.SSLContext to speak TLS over the connection (wss://)."""
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the window is negotiated small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = bytearray()
        self.eof = False
        self.closed = False

    # plumbing

    def close(self):
        if not self.closed:
            self.closed = True
            self.sock.close()

    def abort(self):
        """Drops the connection with an RST (SO_LINGER 0), no close frame, no FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Reads more bytes into self.buf; False on EOF."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data from the server before the deadline")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError("no data from the server before the deadline") from None
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def recv_exact(self, n: int, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ConnectionClosed(f"EOF after {len(self.buf)} of {n} bytes")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def expect_eof(self, timeout: float | None = None):
        """Asserts that the server closes TCP (recv returns b'') without sending anything
        more. An RST instead of a FIN fails too: it can destroy data in flight."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._fill(deadline):
            pass
        assert not self.buf, f"unexpected bytes before EOF: {bytes(self.buf[:64])!r}"

    def expect_abort(self, timeout: float | None = None):
        """Asserts that the server aborts the connection (an RST, as it does when a deadline
        passes: a handshake that never completed, a close the peer never answered) without
        sending anything first."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while self._fill(deadline):
                pass
        except ConnectionResetError:
            assert not self.buf, f"unexpected bytes before the reset: {bytes(self.buf[:64])!r}"
            return
        raise AssertionError("the connection ended with a FIN, not a reset")

    # HTTP

    def request(self, path: str = "/", *, method: str = "GET", version: str = "HTTP/1.1",
                headers: list[tuple[str, str]] | None = None, key: str | None = None,
                omit: tuple[str, ...] = (), extra: list[tuple[str, str]] | None = None,
                host: str | None = None) -> str:
        """Sends an upgrade request (the standard headers, minus `omit`, plus `extra`), or
        exactly `headers` when given. Returns the key used."""
        key = key if key is not None else new_key()
        if headers is None:
            std = [
                ("Host", host or f"{self.host}:{self.port}"),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", key),
                ("Sec-WebSocket-Version", "13"),
            ]
            omit_l = {o.lower() for o in omit}
            headers = [(k, v) for k, v in std if k.lower() not in omit_l] + list(extra or [])
        head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        self.send(head.encode("latin-1"))
        return key

    def read_response(self, timeout: float | None = None) -> Response:
        """Reads an HTTP response head, and its body when it is not a 101 (by
        Content-Length). Bytes after it stay buffered (frames after a 101)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise ConnectionClosed(f"EOF inside the response head: {bytes(self.buf)!r}")
        end = self.buf.index(b"\r\n\r\n") + 4
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[:end]
        lines = head.split("\r\n")
        proto, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        assert proto == "HTTP/1.1", lines[0]
        resp = Response(int(status), reason)
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                resp.headers.append((k.strip(), v.strip()))
        if resp.status != 101:
            n = int(resp.header("Content-Length") or 0)
            resp.body = self.recv_exact(n, max(0.01, deadline - time.monotonic()))
        return resp

    def upgrade(self, path: str = "/", **kw) -> Response:
        """Sends a valid upgrade request and asserts the 101 with the right accept value."""
        key = self.request(path, **kw)
        resp = self.read_response()
        assert resp.status == 101, (resp.status, resp.body)
        assert resp.header("Sec-WebSocket-Accept") == accept_for(key)
        return resp

    # frames

    def send_frame(self, opcode: int, payload: bytes | str = b"", **kw):
        self.send(build_frame(opcode, payload, **kw))

    def send_text(self, text: str | bytes, **kw):
        self.send_frame(OP_TEXT, text, **kw)

    def send_binary(self, data: bytes, **kw):
        self.send_frame(OP_BINARY, data, **kw)

    def send_close(self, code: int | None = None, reason: bytes | str = b""):
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    def recv_frame(self, timeout: float | None = None) -> Frame:
        deadline = time.monotonic() + (timeout or self.timeout)

        def need(n):
            while len(self.buf) < n:
                if not self._fill(deadline):
                    raise ConnectionClosed(f"EOF inside a frame ({len(self.buf)} bytes buffered)")

        need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            need(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            need(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        masked = bool(b1 & 0x80)
        if masked:
            need(pos + 4)
            key = bytes(self.buf[pos:pos + 4])
            pos += 4
        need(pos + n)
        payload = bytes(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        if masked:
            payload = mask_bytes(payload, key)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, masked, payload)

    def recv_message(self, timeout: float | None = None) -> Frame:
        """The next frame, which must be an unfragmented data frame from the server."""
        f = self.recv_frame(timeout)
        assert f.opcode in (OP_TEXT, OP_BINARY) and f.fin and not f.rsv and not f.masked, f
        return f

    def recv_text(self, timeout: float | None = None) -> str:
        f = self.recv_message(timeout)
        assert f.opcode == OP_TEXT, f
        return f.text

    def command(self, text: str, timeout: float | None = None) -> str:
        """Sends a text message and returns the text reply."""
        self.send_text(text)
        return self.recv_text(timeout)

    def expect_close(self, code: int | None, reason: str | None = None, *, skip_data: bool = False,
                     timeout: float | None = None, eof: bool = True) -> Frame:
        """Reads the server's close frame and checks its code (None: an empty payload), and
        its reason when given; then (eof=True) that the server closes TCP right after.
        Data frames before the close fail the test unless skip_data."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            f = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if f.opcode == OP_CLOSE:
                break
            assert skip_data and f.opcode in (OP_TEXT, OP_BINARY, OP_PING), f"expected a close frame, got {f}"
        assert f.fin and not f.rsv and not f.masked, f
        assert f.code == code, f"close code {f.code} {f.payload[2:]!r}, expected {code}"
        if reason is not None:
            assert f.reason == reason, f
        if eof:
            self.expect_eof(max(0.01, deadline - time.monotonic()))
        return f


# --- plain HTTP ------------------------------------------------------------------------------


def http_get(port: int, path: str, host: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT) -> Response:
    c = RawClient(port, host, timeout=timeout)
    try:
        c.send(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        resp = c.read_response()
        c.expect_eof()  # the server answers with Connection: close and closes
        return resp
    finally:
        c.close()


def get_stats(port: int) -> dict:
    resp = http_get(port, "/stats")
    assert resp.status == 200, resp
    return json.loads(resp.body)
