"""`live`, the command-line client (Sources/live), end to end through live-server:
`live pub` from a pipe to `live sub`, line for line, under both codecs; `live who`; the
exit codes and messages for a refused publish, a refused connection, a rejected upgrade;
and `live sub` reconnecting after a server restart.

LIVE_BIN  the live binary (default .build/release/live, relative to the repository root).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from certs import make_cert

from liveserver import ROOT

TIMEOUT = 30.0


def wait_for(pred, timeout: float = TIMEOUT, what: str = ""):
    """Polls an observable (here: `live who --count`) until it holds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # the polling period, not synchronisation


def live_binary() -> str:
    p = Path(os.environ.get("LIVE_BIN", ".build/release/live"))
    return str(p if p.is_absolute() else ROOT / p)


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([live_binary(), *args], input=stdin, capture_output=True, text=True, timeout=TIMEOUT)


class Sub:
    """A running `live sub`: its stdout lines on a queue."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([live_binary(), "sub", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next(self) -> str:
        line = self.lines.get(timeout=TIMEOUT)
        assert line is not None, f"live sub ended: {self.proc.stderr.read()}"
        return line

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=TIMEOUT)


@pytest.fixture
def sub(servers):
    def make(*args):
        s = Sub(*args)
        servers.defer(s.stop)
        return s

    return make


def topic() -> str:
    return f"logs:{uuid.uuid4().hex[:8]}"


def count(url: str, t: str, codec: str = "json") -> int:
    r = run("who", url, t, "--count", "--codec", codec)
    assert r.returncode == 0, r.stderr
    return int(r.stdout)


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_pub_from_a_pipe_to_sub_line_for_line(server, sub, codec):
    t = topic()
    s = sub(server.ws, t, "--codec", codec)
    wait_for(lambda: count(server.ws, t) == 1, what="live sub joined")
    lines = ["first line", '{"n": 1}', "", "ünïcode ✓", "x" * 5000]
    r = run("pub", server.ws, t, "--codec", codec, stdin="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr
    got = [json.loads(s.next()) for _ in lines]
    assert [m["topic"] for m in got] == [t] * len(lines)
    assert [m["type"] for m in got] == ["message"] * len(lines)
    # a line that is JSON goes as that value; any other as a string
    want = ["first line", {"n": 1}, "", "ünïcode ✓", "x" * 5000]
    assert [m["body"] for m in got] == want


def test_body_only_and_a_body_argument(server, sub):
    t = topic()
    s = sub(server.ws, t, "--body-only")
    wait_for(lambda: count(server.ws, t) == 1, what="live sub joined")
    assert run("pub", server.ws, t, '{"a":[1,2]}').returncode == 0
    assert run("pub", server.ws, t, "plain words").returncode == 0
    assert s.next() == '{"a":[1,2]}'
    assert s.next() == '"plain words"'


def test_who_lists_the_subscribers(server, sub):
    t = topic()
    sub(server.ws, t)
    wait_for(lambda: count(server.ws, t) == 1, what="live sub joined")
    r = run("who", server.ws, t)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 1


def test_refused_publish_exits_1_with_the_reason(server):
    r = run("pub", server.ws, "x" * 300, "hi")
    assert r.returncode == 1
    assert "topic too long" in r.stderr
    r = run("pub", server.ws, "announcements", "hi")  # the demo policy: admins only
    assert r.returncode == 1
    assert "not allowed" in r.stderr


def test_refused_connection_exits_1(server):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = run("who", f"ws://127.0.0.1:{port}/ws", "t")
    assert r.returncode == 1
    assert "could not connect: connection refused" in r.stderr


def test_rejected_upgrade_exits_1_with_the_status(server):
    r = run("who", f"ws://{server.host}:{server.port}/not-the-endpoint", "t")
    assert r.returncode == 1
    assert "refused the connection: 404 Not Found" in r.stderr


def test_bad_usage_exits_64(server):
    assert run("pub").returncode == 64
    assert run("sub", server.ws).returncode == 64  # no topic
    assert run("who", server.ws, "t", "--codec", "xml").returncode == 64


def test_sub_reconnects_after_a_restart(servers, sub):
    first = servers.start()
    port = first.port
    t = topic()
    s = sub(first.ws, t)
    wait_for(lambda: count(first.ws, t) == 1, what="live sub joined")
    first.send_signal(__import__("signal").SIGTERM)
    assert first.wait() == 0
    second = servers.start(port=port)
    wait_for(lambda: count(second.ws, t) == 1, timeout=30, what="live sub joined again")
    assert run("pub", second.ws, t, "again").returncode == 0
    assert json.loads(s.next())["body"] == "again"
    assert "disconnected: the server closed the session: 1001" in s.proc.stderr.readline()


def test_pub_rate_stays_under_the_servers_rate_limit(servers, sub):
    """Over live-server's --rate-limit, messages are dropped unanswered; --rate paces a
    stream below it so that every line arrives."""
    server = servers.start("--rate-limit", "20", "--rate-burst", "5")
    t = topic()
    s = sub(server.ws, t, "--body-only")
    wait_for(lambda: count(server.ws, t) == 1, what="live sub joined")
    lines = [f"line {i}" for i in range(30)]
    r = run("pub", server.ws, t, "--rate", "15", stdin="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr
    assert [json.loads(s.next()) for _ in lines] == lines


def test_over_wss_with_a_trusted_certificate(servers, sub, tmp_path):
    cert, key = make_cert(tmp_path, "localhost", san="DNS:localhost")
    srv = servers.start("--tls-cert", cert, "--tls-key", key)
    url = f"wss://localhost:{srv.port}/ws"
    t = topic()
    s = sub(url, t, "--body-only", "--ca-file", str(cert))
    wait_for(lambda: run("who", url, t, "--count", "--ca-file", str(cert)).stdout.strip() == "1",
             what="live sub joined over wss")
    assert run("pub", url, t, '"secret"', "--ca-file", str(cert)).returncode == 0
    assert s.next() == '"secret"'
    # without the certificate trusted, the handshake fails and says why; --insecure passes
    r = run("who", url, t, "--count")
    assert r.returncode == 1 and "certificate verify failed" in r.stderr, r.stderr
    assert run("who", url, t, "--count", "--insecure").stdout.strip() == "1"
