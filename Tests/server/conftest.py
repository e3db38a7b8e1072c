"""Fixtures for the end-to-end tests of `live-server` (the executable, not the C core).

LIVE_SERVER_BIN  the live-server binary (default .build/release/live-server, relative to the
                 repository root), e.g. .build-e2e/release/live-server.

Every server a test started through the `servers` fixture is stopped at the end of the
test with SIGTERM, after which it must exit 0 (a graceful shutdown), unless the test
killed it itself.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from liveserver import LiveServer  # noqa: E402
from process import exit_failures, run_cleanups  # noqa: E402


class Servers:
    """Per-test factory: servers started through it are stopped (and checked) at the end."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.started: list[LiveServer] = []
        self.cleanups: list = []

    def start(self, *flags, port: int = 0) -> LiveServer:
        s = LiveServer([str(f) for f in flags], self.tmp_path / f"live-server-{len(self.started)}.log", port)
        self.started.append(s)
        return s

    def defer(self, fn):
        self.cleanups.append(fn)

    def finish(self):
        run_cleanups(self.cleanups)
        failures = []
        for s in self.started:
            if s.returncode is None:
                s.send_signal(signal.SIGTERM)
        # those the test killed on purpose owe no exit status
        failures += exit_failures([s for s in self.started if not s.killed], lambda s: "live-server")
        assert not failures, "\n\n".join(failures)


@pytest.fixture
def servers(tmp_path):
    f = Servers(tmp_path)
    try:
        yield f
    finally:
        f.finish()


@pytest.fixture
def server(servers) -> LiveServer:
    """A live-server with default flags."""
    return servers.start()
