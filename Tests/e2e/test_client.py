"""The core's client side (clive_client_*, CLive/src/client.c), driven through
Tests/c/test_client.c: against the C test server for the ordinary life of a connection,
and against a raw Python server (in this file) for what a good server never sends.

LIVE_TEST_CLIENT  the client binary (default: test_client next to LIVE_TEST_SERVER)."""

from __future__ import annotations

import hashlib
import base64
import os
import queue
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from certs import make_cert
from conftest import ROOT, clive_server_argv
from wsraw import (GUID, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, RawClient, wait_for,
                   build_frame, close_payload)

TIMEOUT = 10.0


def client_binary() -> str:
    env = os.environ.get("LIVE_TEST_CLIENT")
    if env:
        return str(ROOT / env) if not os.path.isabs(env) else env
    return str(Path(clive_server_argv()[0]).parent / "test_client")


class Client:
    """test_client as a process: its event lines arrive on a queue."""

    def __init__(self, port: int, target: str = "/", *args: str | int, host: str = "127.0.0.1"):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.proc = subprocess.Popen([client_binary(), host, str(port), target] + [str(a) for a in args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def next(self) -> str:
        line = self.lines.get(timeout=TIMEOUT)
        assert line is not None, f"test_client ended: {self.proc.stderr.read().decode()}"
        return line

    def expect(self, prefix: str) -> str:
        line = self.next()
        assert line.startswith(prefix), f"{line!r}, want {prefix!r}"
        return line

    def send(self, command: str):
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def closed(self) -> tuple[str, int, int, str]:
        """Waits for the CLOSE line: (kind, code, http status, reason); the process must
        then exit 0 (the sanitizer builds fail it on leaks and undefined behaviour)."""
        line = self.next()
        while not line.startswith("CLOSE "):
            line = self.next()
        parts = line.split(" ", 4)
        self.proc.stdin.close()
        assert self.proc.wait(timeout=TIMEOUT) == 0, self.proc.stderr.read().decode()
        return parts[1], int(parts[2]), int(parts[3]), parts[4] if len(parts) > 4 else ""

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def client(live):
    made = []

    def make(*args, **kw):
        c = Client(*args, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.kill()


# --- against the C test server ----------------------------------------------------------


def test_echo_text_binary_and_large(live, client):
    srv = live.server()
    c = client(srv.port)
    assert c.expect("OPEN") == "OPEN -1"
    c.send("text héllo")
    assert c.next() == "TEXT héllo"
    c.send("binary 0")
    assert c.next() == "BINARY 0"
    c.send("binary 70000")  # a 64-bit length both ways
    assert c.next() == "BINARY 70000"
    c.send("close 1000 done")
    assert c.closed() == ("by_client", 1000, 0, "done")


def test_pub_sub_between_two_clients(live, client):
    srv = live.server()
    a, b = client(srv.port), client(srv.port)
    a.expect("OPEN")
    b.expect("OPEN")
    a.send("text /sub news")
    assert a.next() == "TEXT ok sub news"
    b.send("text /pub news hello")
    assert a.next() == "TEXT hello"
    assert b.next() == "TEXT ok pub news"


def test_subprotocol_chosen_from_the_offer(live, client):
    srv = live.server()
    c = client(srv.port, "/", "--protocol", "other", "--protocol", "live.v1.msgpack")
    assert c.expect("OPEN") == "OPEN 1"


def test_headers_reach_the_server_and_path_query(live, client):
    srv = live.server()
    c = client(srv.port, "/reject401?token=x", "--header", "Authorization: Bearer t")
    assert c.closed() == ("handshake_failed", 1006, 401, "401 Unauthorized")


def test_server_closes_with_4008(live, client):
    srv = live.server()
    c = client(srv.port)
    c.expect("OPEN")
    c.send("text /close 4008 slow consumer")
    assert c.closed() == ("by_server", 4008, 0, "slow consumer")


def test_connection_refused(client):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    c = client(port)
    kind, code, status, reason = c.closed()
    assert (kind, code, status) == ("connect_failed", 1006, 0)
    assert "refused" in reason


def test_localhost_tries_every_address(live, client):
    """localhost may resolve to ::1 first; the server listens on 127.0.0.1 only."""
    srv = live.server()
    c = client(srv.port, "/", host="localhost")
    c.expect("OPEN")
    c.send("close 1000")
    assert c.closed()[0] == "by_client"


def test_server_shutdown_is_reported(live, client):
    srv = live.server()
    c = client(srv.port)
    c.expect("OPEN")
    live.stop(srv)
    assert c.closed()[:2] == ("by_server", 1001)


def test_send_before_open_is_refused_not_lost(live):
    """A send before on_open returns CLIVE_ESTATE, never a silent drop."""
    srv = live.server()
    c = Client(srv.port)
    try:
        c.send("text early")
        first = c.next()
        # the command may arrive before or after the handshake: either refused or echoed
        if first.startswith("SENT"):
            assert first == "SENT -5 not allowed in this state"
            c.expect("OPEN")
        else:
            assert first.startswith("OPEN")
            assert c.next() == "TEXT early"
    finally:
        c.kill()


# --- against a raw server -----------------------------------------------------------------


class RawServer:
    """Accepts one connection, reads the request head, and lets the test answer."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(TIMEOUT)
        self.port = self.sock.getsockname()[1]
        self.conn: RawClient | None = None
        self.head = b""

    def accept(self) -> bytes:
        s, _ = self.sock.accept()
        s.settimeout(TIMEOUT)
        conn = RawClient.__new__(RawClient)  # the raw client's frame reader, on our side
        conn.sock, conn.buf, conn.eof, conn.closed, conn.timeout = s, bytearray(), False, False, TIMEOUT
        self.conn = conn
        while b"\r\n\r\n" not in conn.buf:
            assert conn._fill(time.monotonic() + TIMEOUT), "EOF in the request head"
        end = conn.buf.index(b"\r\n\r\n") + 4
        self.head = bytes(conn.buf[:end])
        del conn.buf[:end]
        return self.head

    def header(self, name: str) -> str | None:
        for line in self.head.decode().split("\r\n")[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                if k.strip().lower() == name.lower():
                    return v.strip()
        return None

    def upgrade(self, *, accept: str | None = None, extra: str = "") -> None:
        self.accept()
        key = self.header("Sec-WebSocket-Key")
        if accept is None:
            accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        self.conn.send((f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{extra}\r\n").encode())

    def send_frame(self, opcode: int, payload: bytes = b"", **kw):
        self.conn.send(build_frame(opcode, payload, mask=kw.pop("mask", False), **kw))

    def close(self):
        if self.conn:
            self.conn.close()
        self.sock.close()


@pytest.fixture
def raw_server():
    s = RawServer()
    yield s
    s.close()


def test_handshake_request_is_well_formed(raw_server, client):
    c = client(raw_server.port, "/ws?a=1", "--protocol", "p1", "--header", "X-Token: t")
    head = raw_server.accept().decode()
    assert head.startswith("GET /ws?a=1 HTTP/1.1\r\n")
    assert raw_server.header("Host") == f"127.0.0.1:{raw_server.port}"
    assert raw_server.header("Upgrade").lower() == "websocket"
    assert "upgrade" in raw_server.header("Connection").lower()
    assert raw_server.header("Sec-WebSocket-Version") == "13"
    assert len(base64.b64decode(raw_server.header("Sec-WebSocket-Key"), validate=True)) == 16
    assert raw_server.header("Sec-WebSocket-Protocol") == "p1"
    assert raw_server.header("X-Token") == "t"
    c.kill()


def test_every_frame_is_masked_with_a_fresh_key(raw_server, client):
    c = client(raw_server.port)
    raw_server.upgrade()
    c.expect("OPEN")
    keys = set()
    for i in range(20):
        c.send(f"text m{i}")
        # the raw reader unmasks; read the key off the wire first
        conn = raw_server.conn
        while len(conn.buf) < 6:
            conn._fill(time.monotonic() + TIMEOUT)
        assert conn.buf[1] & 0x80, "an unmasked client frame"
        keys.add(bytes(conn.buf[2:6]))
        f = conn.recv_frame()
        assert (f.opcode, f.masked, f.payload) == (OP_TEXT, True, f"m{i}".encode())
    assert len(keys) >= 19  # 20 random 32-bit keys: a repeat is a one-in-millions event


def test_wrong_accept_fails_the_handshake(raw_server, client):
    c = client(raw_server.port)
    raw_server.upgrade(accept=base64.b64encode(b"x" * 20).decode())
    assert c.closed() == ("handshake_failed", 1006, 0, "wrong Sec-WebSocket-Accept")


def test_unoffered_subprotocol_fails_the_handshake(raw_server, client):
    c = client(raw_server.port, "/", "--protocol", "a")
    raw_server.upgrade(extra="Sec-WebSocket-Protocol: b\r\n")
    assert c.closed() == ("handshake_failed", 1006, 0, "a subprotocol that was not offered")


def test_unoffered_extension_fails_the_handshake(raw_server, client):
    c = client(raw_server.port)
    raw_server.upgrade(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert c.closed()[:2] == ("handshake_failed", 1006)


def test_frames_in_the_same_packet_as_the_101(raw_server, client):
    c = client(raw_server.port)
    raw_server.accept()
    key = raw_server.header("Sec-WebSocket-Key")
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    raw_server.conn.send((f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode()
                         + build_frame(OP_TEXT, b"first", mask=False))
    c.expect("OPEN")
    assert c.next() == "TEXT first"


@pytest.mark.parametrize("frame,code", [
    (build_frame(OP_TEXT, b"masked", mask=True), 1002),                 # a masked server frame
    (bytes([0x83, 0x00]), 1002),                                       # reserved opcode 3
    (bytes([0xC1, 0x02]) + b"hi", 1002),                               # RSV1 with no extension
    (b"GET / HTTP/1.1\r\n\r\n", 1002),                                 # garbage
    (build_frame(OP_TEXT, b"\xc3\x28", mask=False), 1007),             # text that is not UTF-8
    (build_frame(OP_BINARY, b"x" * 2000, mask=False), 1009),           # over --max-message
], ids=["masked", "opcode3", "rsv1", "garbage", "utf8", "toobig"])
def test_protocol_errors_close_with_the_right_code(raw_server, client, frame, code):
    c = client(raw_server.port, "/", "--max-message", 1000)
    raw_server.upgrade()
    c.expect("OPEN")
    raw_server.conn.send(frame)
    f = raw_server.conn.recv_frame()
    assert (f.opcode, f.masked, f.code) == (OP_CLOSE, True, code)
    raw_server.conn.close()  # the server's side of the closing: TCP goes
    kind, got, status, _ = c.closed()
    assert (kind, got) == ("protocol", code)


def test_ping_is_answered_with_its_payload(raw_server, client):
    c = client(raw_server.port)
    raw_server.upgrade()
    c.expect("OPEN")
    raw_server.send_frame(OP_PING, b"are you there")
    f = raw_server.conn.recv_frame()
    assert (f.opcode, f.masked, f.payload) == (OP_PONG, True, b"are you there")


def test_fragmented_message_with_a_ping_inside(raw_server, client):
    c = client(raw_server.port)
    raw_server.upgrade()
    c.expect("OPEN")
    raw_server.send_frame(OP_TEXT, b"frag", fin=False)
    raw_server.send_frame(OP_PING, b"p")
    raw_server.send_frame(0, b"ment")
    assert raw_server.conn.recv_frame().opcode == OP_PONG
    assert c.next() == "TEXT fragment"


def test_server_close_is_echoed_then_reported(raw_server, client):
    c = client(raw_server.port)
    raw_server.upgrade()
    c.expect("OPEN")
    raw_server.send_frame(OP_CLOSE, close_payload(1008, "policy"))
    f = raw_server.conn.recv_frame()
    assert (f.opcode, f.masked, f.code) == (OP_CLOSE, True, 1008)
    raw_server.conn.close()
    assert c.closed() == ("by_server", 1008, 0, "policy")


def test_client_close_waits_for_the_reply(raw_server, client):
    c = client(raw_server.port)
    raw_server.upgrade()
    c.expect("OPEN")
    c.send("close 4000 bye")
    f = raw_server.conn.recv_frame()
    assert (f.opcode, f.code, f.reason) == (OP_CLOSE, 4000, "bye")
    raw_server.send_frame(OP_CLOSE, close_payload(4000))
    raw_server.conn.close()
    assert c.closed() == ("by_client", 4000, 0, "bye")


def test_silent_server_is_pinged_then_given_up(raw_server, client):
    c = client(raw_server.port, "/", "--ping-ms", 50, "--idle-ms", 300)
    raw_server.upgrade()
    c.expect("OPEN")
    f = raw_server.conn.recv_frame()
    assert (f.opcode, f.masked) == (OP_PING, True)
    # never answered: the client gives up after --idle-ms
    assert c.closed()[:2] == ("idle", 1006)


def test_handshake_timeout(raw_server, client):
    c = client(raw_server.port, "/", "--handshake-ms", 200)
    raw_server.accept()  # and never answers
    assert c.closed() == ("handshake_failed", 1006, 0, "handshake timed out")


def test_connection_dropped_without_close(raw_server, client):
    c = client(raw_server.port)
    raw_server.upgrade()
    c.expect("OPEN")
    raw_server.conn.close()
    assert c.closed()[:2] == ("abnormal", 1006)


def test_echo_from_a_callback_goes_out_before_a_later_failure(raw_server, client):
    """Autobahn 3.2: a message, then a bad frame in the same packet. The echo, sent from
    on_message on the loop thread, must leave before the close for the bad frame."""
    c = client(raw_server.port, "/", "--echo")
    raw_server.upgrade()
    c.expect("OPEN")
    raw_server.conn.send(build_frame(OP_TEXT, b"Hello", mask=False) + bytes([0xA1, 0x02]) + b"hi")
    f = raw_server.conn.recv_frame()
    assert (f.opcode, f.payload) == (OP_TEXT, b"Hello")
    f = raw_server.conn.recv_frame()
    assert (f.opcode, f.code) == (OP_CLOSE, 1002)
    raw_server.conn.close()
    assert c.closed()[:2] == ("protocol", 1002)


# --- wss:// -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("client-certs")
    return {"good": make_cert(d, "good"), "other": make_cert(d, "other"),
            "elsewhere": make_cert(d, "elsewhere", san="DNS:example.com")}


def tls_server(live, tls_certs, name="good"):
    cert, key = tls_certs[name]
    srv = live.server("--tls-cert", cert, "--tls-key", key, "--tls-port", 0)
    return srv, srv.stats()["tls_port"]


def test_wss_with_a_trusted_certificate(live, client, tls_certs):
    srv, port = tls_server(live, tls_certs)
    for host in ("127.0.0.1", "localhost"):  # an address (no SNI) and a name (SNI)
        c = client(port, "/", "--tls", "--ca", tls_certs["good"][0], host=host)
        assert c.expect("OPEN") == "OPEN -1"
        c.send("text over tls")
        assert c.next() == "TEXT over tls"
        c.send("binary 300000")  # several records each way
        assert c.next() == "BINARY 300000"
        c.send("close 1000 done")
        assert c.closed() == ("by_client", 1000, 0, "done")
    assert srv.stats()["tls_handshakes"] == 2


def test_wss_pub_sub_with_a_plain_client(live, client, tls_certs):
    srv, port = tls_server(live, tls_certs)
    secure, plain = client(port, "/", "--tls", "--ca", tls_certs["good"][0]), client(srv.port)
    secure.expect("OPEN")
    plain.expect("OPEN")
    secure.send("text /sub news")
    assert secure.next() == "TEXT ok sub news"
    plain.send("text /pub news over both")
    assert secure.next() == "TEXT over both"


@pytest.mark.parametrize("cert,ca,why", [
    ("good", "other", "TLS: certificate verify failed: self-signed certificate"),
    # its own CA, but made out for example.com, not 127.0.0.1
    ("elsewhere", "elsewhere", "TLS: certificate verify failed: IP address mismatch"),
])
def test_wss_refuses_a_certificate_it_cannot_verify(live, client, tls_certs, cert, ca, why):
    srv, port = tls_server(live, tls_certs, cert)
    c = client(port, "/", "--tls", "--ca", tls_certs[ca][0])
    kind, code, status, reason = c.closed()
    assert (kind, code, status) == ("handshake_failed", 1006, 0)
    assert reason.startswith(why), reason
    wait_for(lambda: srv.stats()["tls_failures"] == 1, what="the server to count the failed handshake")


def test_wss_insecure_skips_verification(live, client, tls_certs):
    srv, port = tls_server(live, tls_certs, "elsewhere")
    c = client(port, "/", "--insecure")
    assert c.expect("OPEN") == "OPEN -1"
    c.send("close 1000 ")
    assert c.closed()[:2] == ("by_client", 1000)
