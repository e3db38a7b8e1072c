"""The server processes themselves: a SIGTERM at any moment after the PORT line is a
graceful shutdown with exit status 0."""

import signal
import subprocess

import pytest

from conftest import ROOT, clive_server_argv, echo_server_argv

ATTEMPTS = 10


def sigterm_right_after_port(argv):
    """Starts the server ATTEMPTS times and signals it as soon as PORT is printed; returns
    the exit statuses (None for a process that ignored the signal)."""
    statuses = []
    for _ in range(ATTEMPTS):
        p = subprocess.Popen(argv + ["--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
        line = p.stdout.readline()
        assert line.startswith(b"PORT "), line
        p.send_signal(signal.SIGTERM)
        try:
            statuses.append(p.wait(10))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            statuses.append(None)
        p.stdout.close()
    return statuses


@pytest.mark.parametrize("kind", [
    "test_server",
    pytest.param("live-echo", marks=pytest.mark.echo),
])
def test_sigterm_right_after_port_is_a_clean_shutdown(kind):
    """Regression (live-echo): it printed PORT before installing its signal handling, so a
    SIGTERM right after PORT killed it (status -15) or was lost (it never exited)."""
    if kind == "live-echo":
        argv = echo_server_argv()
        if not argv:
            pytest.skip("LIVE_ECHO_SERVER is not set")
    else:
        argv = clive_server_argv()
    statuses = sigterm_right_after_port(argv)
    assert statuses == [0] * ATTEMPTS
