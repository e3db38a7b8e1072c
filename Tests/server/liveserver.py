"""Starting and stopping the live-server binary, for the tests and for screenshot.py.

LIVE_SERVER_BIN  the live-server binary (default .build/release/live-server, relative to the
                 repository root), e.g. .build-e2e/release/live-server.

A server is started with `--port 0` (or a given port) and reports its address on stdout:
    live-server: http://127.0.0.1:<port>/  ws://127.0.0.1:<port>/ws
With --tls-cert/--tls-key the line says https:// and wss://; with --tls-port as well, a
second line gives the TLS listener's address (the first stays plain).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from process import read_first_line, wait_or_kill  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
START_TIMEOUT = 30.0  # generous: a loaded 2-core CI machine
STOP_TIMEOUT = 30.0
ADDRESS_LINE = re.compile(rb"^live-server: (https?)://([^/\s]+):(\d+)/\s+wss?://\S+/ws\s*$")


def server_binary() -> Path:
    p = Path(os.environ.get("LIVE_SERVER_BIN", ".build/release/live-server"))
    if not p.is_absolute():
        p = ROOT / p
    return p


def catches(pid: int, sig: int) -> bool:
    """Whether process pid has a handler for sig (or ignores it): /proc/PID/status."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("SigCgt:", "SigIgn:")) and (int(line.split()[1], 16) >> (sig - 1)) & 1:
                    return True
    except FileNotFoundError:
        pass
    return False


class LiveServer:
    """One live-server process."""

    def __init__(self, flags: list[str], log_path: Path, port: int = 0):
        binary = server_binary()
        if not binary.exists():
            raise RuntimeError(f"live-server binary {binary} does not exist: build it "
                               "(swift build -c release --product live-server) or set LIVE_SERVER_BIN")
        self.argv = [str(binary), "--port", str(port), *[str(f) for f in flags]]
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.log,
                                     stdin=subprocess.DEVNULL, cwd=ROOT)
        self.returncode: int | None = None
        self.killed = False
        self.scheme, self.host, self.port = self._read_address()
        self.tls_port = self.port if self.scheme == "https" else None
        if "--tls-port" in self.argv:
            _, _, self.tls_port = self._read_address()
        self._wait_for_signal_handlers()

    def _read_address(self) -> tuple[str, str, int]:
        line = read_first_line(self.proc, START_TIMEOUT, "live-server", self.stderr)
        m = ADDRESS_LINE.match(line)
        assert m, f"unexpected address line on stdout: {line!r}"
        return m.group(1).decode(), m.group(2).decode(), int(m.group(3))

    def _wait_for_signal_handlers(self):
        """live-server prints its address before its graceful-shutdown handlers are in
        place (see test_server_process.py): a SIGTERM sent right after the line kills it
        outright. So that every test's final SIGTERM tests the graceful shutdown, wait
        until the process catches SIGTERM and SIGINT (Linux: /proc/PID/status)."""
        status = Path(f"/proc/{self.proc.pid}/status")
        if not status.exists():
            return
        deadline = time.monotonic() + START_TIMEOUT
        while not (catches(self.proc.pid, signal.SIGTERM) and catches(self.proc.pid, signal.SIGINT)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"live-server exited ({self.proc.returncode}) at start:\n{self.stderr()}")
            if time.monotonic() > deadline:
                raise RuntimeError("live-server never installed its SIGTERM/SIGINT handlers")
            time.sleep(0.002)  # polling period of a real observable, not synchronisation

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def wss(self) -> str:
        return f"wss://127.0.0.1:{self.tls_port}/ws"

    def stderr(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def send_signal(self, sig: int):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self):
        """SIGKILL (a crash); waits for the process to be gone."""
        self.killed = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.returncode = self.proc.wait()
        self._close_pipes()

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            self.returncode = wait_or_kill(self.proc, timeout, "live-server", lambda: self.stderr()[-6000:])
        finally:
            self._close_pipes()
        return self.returncode

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.send_signal(sig)
        return self.wait()

    def _close_pipes(self):
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if not self.log.closed:
            self.log.close()
