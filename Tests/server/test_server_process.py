"""live-server as a process: its address line, its flags, its signals."""

from __future__ import annotations

import signal
import socket
import subprocess
import urllib.parse

import pytest

from liveproto import http_get
from liveserver import ADDRESS_LINE, ROOT, STOP_TIMEOUT, server_binary


def start_raw(*flags: str) -> tuple[subprocess.Popen, bytes]:
    """Starts live-server and returns it once its address line was read (no other wait)."""
    p = subprocess.Popen([str(server_binary()), "--port", "0", *flags], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=ROOT)
    line = p.stdout.readline()
    return p, line


def stop_raw(p: subprocess.Popen, sig=signal.SIGTERM) -> int:
    try:
        p.send_signal(sig)
        return p.wait(STOP_TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()


def test_address_line(servers):
    srv = servers.start()
    assert srv.host == "127.0.0.1" and 0 < srv.port < 65536


@pytest.mark.parametrize("flags", [["--default-codec", "cbor"], ["--log-level", "loud"], ["--port", "x"]])
def test_bad_flags_are_refused(flags):
    p = subprocess.run([str(server_binary()), *flags], capture_output=True, timeout=STOP_TIMEOUT,
                       stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert p.stdout == b"" and p.stderr  # no address line; a message on stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_right_after_the_address_line_is_graceful(sig):
    # A supervisor or script that starts the server, reads the line and stops it at once.
    # Up to 30 tries, stopping at the first failure: the window is short, but a try hits it
    # far more often than not (e.g. 17 of 20 on an idle 2-core machine).
    codes = []
    for _ in range(30):
        p, line = start_raw()
        assert ADDRESS_LINE.match(line), line
        codes.append(stop_raw(p, sig))
        if codes[-1] != 0:
            break
    assert set(codes) == {0}, f"exit codes {codes}"


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_address_line_with_an_ipv6_host_is_a_url():
    p, line = start_raw("--host", "::1")
    try:
        words = line.decode().split()
        assert words[0] == "live-server:" and len(words) == 3, line
        http, ws = urllib.parse.urlsplit(words[1]), urllib.parse.urlsplit(words[2])
        assert (http.scheme, http.hostname, http.path) == ("http", "::1", "/"), line
        assert (ws.scheme, ws.hostname, ws.path) == ("ws", "::1", "/ws"), line
        assert http.port == ws.port and http.port > 0, line
        # and the server is there
        socket.create_connection(("::1", http.port), timeout=10).close()
    finally:
        stop_raw(p)


def test_the_address_line_is_printed_once():
    """Regression: the start-up line went to the logger and to stdout, so a terminal showed
    it twice. It goes to stdout only; nothing on stderr repeats it."""
    p = subprocess.Popen([str(server_binary()), "--port", "0"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=ROOT)
    line = p.stdout.readline()
    assert ADDRESS_LINE.match(line), line
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=STOP_TIMEOUT)
    assert b"live-server: http://" not in out + err


@pytest.mark.parametrize("flags,message", [
    (["--port", "70000"], "--port must be 0...65535 (0 picks a free port), got 70000"),
    (["--port", "-1"], "--port must be 0...65535 (0 picks a free port), got -1"),
    (["--throttle", "room"], '--throttle takes PREFIX:MILLISECONDS, got "room" (no colon)'),
    (["--throttle", "room:abc"], 'the interval must be a whole number of milliseconds above 0'),
    (["--queue-size", "0"], "--queue-size must be at least 1"),
    (["--max-sessions", "-3"], "--max-sessions must be 0 or more"),
    (["--event-loops", "100000"], "--event-loops must be at most 4 per CPU"),
])
def test_bad_values_are_refused_with_a_message_that_names_them(flags, message):
    """Regression: --port 70000 said "invalid argument", --port -1 "Missing value", and a
    --throttle without a number was dropped silently."""
    p = subprocess.run([str(server_binary()), *flags], capture_output=True, timeout=STOP_TIMEOUT,
                       stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and p.stdout == b""
    assert message in p.stderr.decode(), p.stderr


def test_a_port_in_use_is_refused_naming_the_address(servers):
    """Regression: a second live-server on a port in use started silently, and the kernel
    split the clients between the two (SO_REUSEPORT)."""
    first = servers.start()
    p = subprocess.run([str(server_binary()), "--port", str(first.port)], capture_output=True,
                       timeout=STOP_TIMEOUT, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and p.stdout == b""
    assert f"address 127.0.0.1:{first.port} already in use" in p.stderr.decode(), p.stderr


def test_get_on_the_websocket_path_answers_426_with_upgrade(servers):
    srv = servers.start()
    status, headers, _ = http_get(f"http://127.0.0.1:{srv.port}/ws")
    assert status == 426
    assert headers.get("Upgrade", "").lower() == "websocket"
