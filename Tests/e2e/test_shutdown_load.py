"""Graceful shutdown under load: thousands of open sessions, half of them subscribed to a
topic that publishers keep publishing to, then SIGTERM. Every session must receive a
close frame with 1001, the server must exit 0 within a generous deadline (it waits at
most close_timeout for peers that never answer), and under the ASan build nothing may be
reported (LIVE_TEST_SERVER selects the binary, as for every e2e test).

Size: 10,000 sessions always (10-15 s with the plain and the ASan build alike on a 2-core
machine, well within the 60 s budget, so no LIVE_SOAK switch is needed);
LIVE_SHUTDOWN_SESSIONS=n overrides it, e.g. 2000 on a much slower machine.

The clients are one selectors-driven loop over nonblocking sockets (the Python websockets
library would take minutes for 10,000): connects, upgrades, subscriptions, publishes,
reads and closing handshakes of every socket advance together, each as its bytes arrive.
Publishers publish under a window (deliveries outstanding over all subscribers at most
WINDOW publishes' worth), so no subscriber's queue can overflow: a 4008 would be a failure.
"""

from __future__ import annotations

import base64
import collections
import errno
import os
import resource
import selectors
import socket
import struct
import time

from wsraw import OP_CLOSE, OP_PING, OP_TEXT, accept_for, build_frame, close_payload

SESSIONS = int(os.environ.get("LIVE_SHUTDOWN_SESSIONS", "10000"))
PUBLISHERS = 3
WINDOW = 16             # publishes in flight beyond what every subscriber has received
CONNECTING = 256        # handshakes in progress at once (below the listen backlogs)
WARM_PUBLISHES = 100    # publishes fully delivered before the SIGTERM
SILENT_EVERY = 10       # every 10th session never answers the server's close
CLOSE_MS = 2000
PAD = "x" * 500         # each publish is a ~520-byte message
DEADLINE = 90.0         # a generous upper bound for the whole exchange


def _raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 16
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


_raise_nofile()


class Conn:
    __slots__ = ("i", "sock", "state", "key", "buf", "role", "data", "close", "eof", "silent",
                 "outstanding", "after_close", "seq", "next", "acked")

    def __init__(self, i: int, role: str):
        self.i = i
        self.role = role           # "sub", "idle" or "pub"
        self.sock = None
        self.state = "new"         # new, connecting, upgrading, open, closed (close frame seen)
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.buf = bytearray()
        self.data = 0              # data frames received
        self.close = None          # the close frame's payload
        self.eof = False
        self.silent = i % SILENT_EVERY == 0
        self.outstanding = 0       # publisher: publishes not yet acknowledged
        self.after_close = 0       # frames after the close frame (must stay 0)
        self.seq = 0               # publisher: its publishes so far
        self.acked = 0             # publisher: "ok pub room" replies received
        self.next = {}             # subscriber: publisher index -> the next seq expected


def parse_frames(c: Conn):
    """Yields (opcode, payload) for every whole server frame in c.buf and drops them."""
    buf, pos, n = c.buf, 0, len(c.buf)
    out = []
    while n - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        ln, h = b1 & 0x7F, 2
        if ln == 126:
            if n - pos < 4:
                break
            ln, h = struct.unpack_from("!H", buf, pos + 2)[0], 4
        elif ln == 127:
            if n - pos < 10:
                break
            ln, h = struct.unpack_from("!Q", buf, pos + 2)[0], 10
        assert not b1 & 0x80, "a masked server frame"
        if n - pos < h + ln:
            break
        out.append((b0 & 0x0F, bytes(buf[pos + h:pos + h + ln])))
        pos += h + ln
    del buf[:pos]
    return out


class Driver:
    def __init__(self, port: int):
        self.port = port
        self.sel = selectors.DefaultSelector()
        self.conns: list[Conn] = []
        self.pending: collections.deque[Conn] = collections.deque()
        self.connecting = 0
        self.open = 0
        self.acks = collections.Counter()   # "ok sub room", "ok pub room"
        self.published = 0
        self.delivered = 0                  # "m..." frames received by subscribers
        self.closing = False                # the SIGTERM was sent
        self.codes = collections.Counter()
        self.eofs = 0
        self.problems: list[str] = []
        self.loaded = False                 # publishers may publish
        self.subscribers = 0
        self.publishers: list[Conn] = []

    # connection set-up

    def add(self, role: str):
        c = Conn(len(self.conns), role)
        self.conns.append(c)
        self.pending.append(c)

    def start_connects(self):
        while self.pending and self.connecting < CONNECTING:
            c = self.pending.popleft()
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rc = s.connect_ex(("127.0.0.1", self.port))
            assert rc in (0, errno.EINPROGRESS), os.strerror(rc)
            c.sock, c.state = s, "connecting"
            self.connecting += 1
            self.sel.register(s, selectors.EVENT_WRITE, c)

    def send(self, c: Conn, data: bytes):
        """Small writes on a socket whose buffer is nearly empty: they go out whole."""
        try:
            n = c.sock.send(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            if not self.closing:
                self.problems.append(f"#{c.i}: send failed: {e}")
            return
        assert n == len(data), f"#{c.i}: short write of {n}/{len(data)} bytes"

    def on_writable(self, c: Conn):
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        assert err == 0, f"#{c.i}: connect failed: {os.strerror(err)}"
        self.sel.modify(c.sock, selectors.EVENT_READ, c)
        c.state = "upgrading"
        self.send(c, (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {c.key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    # reading

    def on_readable(self, c: Conn):
        try:
            chunk = c.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except ConnectionResetError:
            self.problems.append(f"#{c.i} ({c.role}): reset in state {c.state}")
            chunk = b""
        if not chunk:
            self.on_eof(c)
            return
        c.buf += chunk
        if c.state == "upgrading":
            end = c.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(c.buf[:end]).decode("latin-1")
            del c.buf[:end + 4]
            assert head.startswith("HTTP/1.1 101 "), f"#{c.i}: {head!r}"
            assert f"Sec-WebSocket-Accept: {accept_for(c.key)}" in head, head
            c.state = "open"
            self.connecting -= 1
            self.open += 1
        for op, payload in parse_frames(c):
            if c.state == "closed":
                c.after_close += 1
            elif op == OP_CLOSE:
                self.on_close_frame(c, payload)
            elif op == OP_TEXT and payload.startswith(b"m"):
                # each publisher's messages in the order it made them, no gap (publishers
                # on different loops interleave in any order)
                p, seq, pad = payload[1:].split(b":")
                if pad != PAD.encode():
                    self.problems.append(f"#{c.i}: damaged payload {payload[:40]!r}")
                want = c.next.get(p, 0)
                if int(seq) != want:
                    self.problems.append(f"#{c.i}: got {payload!r}, expected seq {want} of publisher {p!r}")
                c.next[p] = want + 1
                c.data += 1
                self.delivered += 1
            elif op == OP_TEXT and payload.startswith(b"ok "):
                self.acks[payload.decode()] += 1
                if c.role == "pub":
                    c.outstanding -= 1
                    c.acked += 1
            elif op != OP_PING:
                self.problems.append(f"#{c.i}: unexpected frame {op:#x} {payload[:40]!r}")

    def on_close_frame(self, c: Conn, payload: bytes):
        c.state = "closed"
        c.close = payload
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        self.codes[code] += 1
        if not c.silent:  # answer the close, then our FIN
            self.send(c, build_frame(OP_CLOSE, close_payload(code)))
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def on_eof(self, c: Conn):
        c.eof = True
        self.eofs += 1
        self.sel.unregister(c.sock)
        if c.state != "closed":
            self.problems.append(f"#{c.i} ({c.role}): EOF in state {c.state} without a close frame")
        if not c.silent:
            c.sock.close()
        # a silent peer keeps its socket open: the server must give up on it by itself

    # the loop

    def run_until(self, pred, what: str, timeout: float = DEADLINE):
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {what}: {self.summary()}"
            self.start_connects()
            self.publish()
            for key, mask in self.sel.select(min(left, 0.5)):
                c = key.data
                if c.state == "connecting":
                    self.on_writable(c)
                else:
                    self.on_readable(c)
            assert not self.problems, self.problems[:10]

    def publish(self):
        subs = self.subscribers
        for c in self.publishers:
            if not self.loaded or c.state != "open" or c.outstanding:
                continue
            # the window: deliveries outstanding, summed over the subscribers, at most
            # WINDOW publishes' worth
            if self.delivered < (self.published - WINDOW) * subs:
                return
            self.send(c, build_frame(OP_TEXT, f"/pub room m{c.i}:{c.seq}:{PAD}"))
            c.seq += 1
            c.outstanding += 1
            self.published += 1

    def summary(self) -> str:
        return (f"open {self.open}, connecting {self.connecting}, pending {len(self.pending)}, acks {dict(self.acks)}, "
                f"published {self.published}, delivered {self.delivered}, codes {dict(self.codes)}, eofs {self.eofs}")

    def close_all(self):
        for c in self.conns:
            if c.sock is not None:
                c.sock.close()
        self.sel.close()


def test_graceful_shutdown_under_load(live):
    n = SESSIONS
    srv = live.server("--loops", 2, "--close-ms", CLOSE_MS)
    d = Driver(srv.port)
    t0 = time.monotonic()
    try:
        for i in range(n):
            d.add("sub" if i % 2 else "idle")
        for _ in range(PUBLISHERS):
            d.add("pub")
        total = n + PUBLISHERS
        d.publishers = [c for c in d.conns if c.role == "pub"]
        d.run_until(lambda: d.open == total, f"{total} upgrades")
        t_open = time.monotonic()

        subs = [c for c in d.conns if c.role == "sub"]
        d.subscribers = len(subs)
        for c in subs:
            d.send(c, build_frame(OP_TEXT, "/sub room"))
        d.run_until(lambda: d.acks["ok sub room"] == len(subs), "every subscription")
        st = srv.stats()
        # topics is summed over the loops' registries: one topic counts once per loop that
        # has a subscriber of it
        assert st["sessions"] == total and st["subscriptions"] == len(subs) and 1 <= st["topics"] <= 2, st

        d.loaded = True
        d.run_until(lambda: d.delivered >= WARM_PUBLISHES * len(subs), f"{WARM_PUBLISHES} publishes delivered")
        in_flight = d.published * len(subs) - d.delivered
        acked = {b"%d" % c.i: c.acked for c in d.publishers}
        t_term = time.monotonic()
        srv.terminate()  # publishers keep publishing until their own close frame
        d.run_until(lambda: d.eofs == total, "a close frame and EOF on every session")
        t_closed = time.monotonic()
        rc = srv.wait(timeout=60)  # it waits at most --close-ms for the silent peers
        t_exit = time.monotonic()
    finally:
        d.close_all()
    log = srv.stderr()
    assert rc == 0, log[-4000:]
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer"):
        assert marker not in log, log[-4000:]
    assert d.codes == {1001: total}, dict(d.codes)
    assert all(c.close[2:] == b"server shutting down" for c in d.conns)
    assert sum(c.after_close for c in d.conns) == 0
    # every subscriber got a gap-free prefix of each publisher's messages (checked as they
    # came), including every publish acknowledged before the SIGTERM: the shutdown
    # reaches each loop behind the publishes made before it, and the close frame goes
    # behind what is queued; only subscribers got any
    short = [(c.i, p, c.next.get(p, 0), a) for c in subs for p, a in acked.items() if c.next.get(p, 0) < a]
    assert not short, short[:10]
    assert all(c.data == 0 for c in d.conns if c.role != "sub")
    assert f"opened {total} closed {total} double 0" in log, log[-2000:]
    print(f"shutdown under load ({os.path.relpath(srv.argv[0])}): {total} sessions ({len(subs)} subscribed, {PUBLISHERS} publishers), "
          f"{d.published} publishes ({in_flight} deliveries in flight at SIGTERM); "
          f"open after {t_open - t0:.1f}s; all closes and EOFs {t_closed - t_term:.1f}s after SIGTERM, "
          f"exit {t_exit - t_term:.1f}s after it; codes {dict(d.codes)}")
