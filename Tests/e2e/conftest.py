"""Fixtures for the end-to-end tests of the C core, run against Tests/c/test_server.c.

LIVE_TEST_SERVER  the test server binary (default build/plain/test_server, relative to the
                  repository root); point it at build/asan/test_server for the sanitizer run.
LIVE_ECHO_SERVER  optional: a command for a pure echo server (e.g. the Swift live-echo),
                  started as `<cmd> --port 0` and printing `PORT <n>`. Tests that need only
                  echo and RFC 6455 behaviour run against it too when it is set.

Every server is stopped at the end of its test with SIGTERM, and its exit status must be
0: test_server exits 1 when a session missed its on_close or got two, and the sanitizer
builds fail on leaks and undefined behaviour.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

import wsraw  # noqa: E402
from process import exit_failures, read_first_line, run_cleanups, wait_or_kill  # noqa: E402
from wsraw import wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0


def _resolve(cmd: str) -> list[str]:
    argv = shlex.split(cmd)
    p = Path(argv[0])
    if not p.is_absolute() and (ROOT / p).exists():
        argv[0] = str(ROOT / p)
    return argv


def clive_server_argv() -> list[str]:
    return _resolve(os.environ.get("LIVE_TEST_SERVER", "build/plain/test_server"))


def echo_server_argv() -> list[str] | None:
    cmd = os.environ.get("LIVE_ECHO_SERVER")
    return _resolve(cmd) if cmd else None


class Server:
    """A server process: started with --port 0, it reports its port on stdout."""

    def __init__(self, argv: list[str], log_path: Path, name: str):
        self.argv = argv
        self.name = name
        self.has_stats = name == "test_server"  # GET /stats is test_server's
        self.log_path = log_path
        self.log = open(log_path, "wb")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, env=env,
                                     cwd=ROOT)
        self.port = self._read_port()
        self.returncode: int | None = None

    def _read_port(self) -> int:
        line = read_first_line(self.proc, START_TIMEOUT, self.name, self.stderr)
        words = line.decode().split()
        assert len(words) == 2 and words[0] == "PORT", line
        return int(words[1])

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self):
        """Sends SIGTERM (graceful shutdown) once."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        self.returncode = wait_or_kill(self.proc, timeout, self.name, self.stderr)
        self.proc.stdout.close()
        self.log.close()
        return self.returncode

    def stop(self) -> int:
        self.terminate()
        return self.wait()

    def stats(self) -> dict:
        return wsraw.get_stats(self.port)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def _try_stats(server: Server) -> dict | None:
    """/stats, or None while it is refused (e.g. a 503 until the server has seen the FINs
    of the clients that kept a --max-sessions server full)."""
    try:
        return server.stats()
    except (AssertionError, OSError, wsraw.ConnectionClosed):
        return None


def _balanced(st: dict | None) -> bool:
    return st is not None and (st["connections"] == 1 and st["sessions"] == 0 and st["subscriptions"] == 0
            and st["topics"] == 0 and st["queued_frames"] == 0 and st["queued_bytes"] == 0
            and st["opened"] == st["closed"] and st["double_closed"] == 0)


class Live:
    """Per-test factory for servers and clients; tears clients down before servers."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.servers: list[Server] = []
        self.cleanups: list = []

    def server(self, *flags: str | int) -> Server:
        """Starts the C test server with flags (e.g. "--loops", 2)."""
        return self._start(clive_server_argv() + ["--port", "0"] + [str(f) for f in flags], "test_server")

    def server_on(self, port: int, *flags: str | int) -> Server:
        """Starts the C test server on a given port (e.g. one another server holds)."""
        return self._start(clive_server_argv() + ["--port", str(port)] + [str(f) for f in flags],
                           "test_server")

    def upgrade_or_status(self, server: Server) -> int:
        """Tries one upgrade: 101 (the client is kept for the test) or the refusal's status."""
        c = wsraw.RawClient(server.port)
        c.request()
        status = c.read_response().status
        if status == 101:
            self.cleanups.append(c.close)
        else:
            c.close()
        return status

    def echo(self) -> Server:
        argv = echo_server_argv()
        assert argv, "LIVE_ECHO_SERVER is not set"
        return self._start(argv + ["--port", "0"], "live-echo")

    def _start(self, argv: list[str], name: str) -> Server:
        s = Server(argv, self.tmp_path / f"{name}-{len(self.servers)}.log", name)
        self.servers.append(s)
        return s

    def raw(self, server: Server, **kw) -> wsraw.RawClient:
        """A raw TCP client connected to server (not yet upgraded)."""
        c = wsraw.RawClient(server.port, **kw)
        self.cleanups.append(c.close)
        return c

    def upgrade_unless_full(self, server: Server) -> wsraw.RawClient | None:
        """An upgraded client, or None when a --max-sessions server answered 503 (then it
        must close the connection). For wait_for: a slot frees once the server has seen
        another client's FIN."""
        c = wsraw.RawClient(server.port)
        try:
            c.request()
            resp = c.read_response()
            if resp.status == 101:
                self.cleanups.append(c.close)
                return c
            assert resp.status == 503, resp
            c.expect_eof()
        except Exception:
            c.close()
            raise
        c.close()
        return None

    def ws(self, server: Server, path: str = "/", **kw) -> wsraw.RawClient:
        """A raw client that has completed the upgrade."""
        c = self.raw(server)
        c.upgrade(path, **kw)
        return c

    def defer(self, fn):
        self.cleanups.append(fn)

    def close_clients(self):
        run_cleanups(self.cleanups)

    def stop(self, server: Server) -> int:
        """Stops a server inside a test, which then owns the exit-status check."""
        self.servers.remove(server)
        return server.stop()

    def stop_servers(self):
        failures = []
        # With every client gone, a test_server's books must balance: no connection but
        # the /stats request itself, no session, subscription, topic or queued byte left,
        # and on_close called once for every accepted session.
        for s in self.servers:
            if s.has_stats and s.proc.poll() is None:
                try:
                    wait_for(lambda: _balanced(_try_stats(s)), timeout=10, what=f"{s.name}'s counters to settle")
                except Exception as e:  # report, but still stop every server
                    failures.append(f"{s.name}: {e}")
        for s in self.servers:
            s.terminate()
        failures += exit_failures(self.servers, lambda s: s.name)
        assert not failures, "\n\n".join(failures)


@pytest.fixture
def live(tmp_path):
    lv = Live(tmp_path)
    try:
        yield lv
    finally:
        lv.close_clients()
        lv.stop_servers()


# The live-echo variants carry the "echo" marker, so `pytest -m echo` (with
# LIVE_ECHO_SERVER set) runs exactly the echo part against it.
SERVER_KINDS = ["test_server", pytest.param("live-echo", marks=pytest.mark.echo)]


@pytest.fixture(params=SERVER_KINDS)
def echo_server(request, live) -> Server:
    """A server with default options that echoes text and binary messages: the C test
    server, and the LIVE_ECHO_SERVER command when it is set (skipped otherwise)."""
    if request.param == "live-echo":
        if not echo_server_argv():
            pytest.skip("LIVE_ECHO_SERVER is not set")
        return live.echo()
    return live.server()
