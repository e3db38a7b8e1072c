"""A redis-server of the tests' own: on a free port, no persistence, stopped at the end.

REDIS_SERVER_BIN / REDIS_CLI_BIN  the binaries (default: redis-server and redis-cli on PATH).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from process import wait_or_kill  # noqa: E402

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self, log_path: Path, port: int | None = None, extra: tuple[str, ...] = ()):
        self.port = port or free_port()
        self.extra = list(extra)
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self):
        """Starts redis-server on self.port and returns once it accepts connections (its
        "Ready to accept connections" line)."""
        argv = [os.environ.get("REDIS_SERVER_BIN", "redis-server"), "--port", str(self.port),
                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "notice", *self.extra]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        for line in self.proc.stdout:
            self.log.write(line)
            if b"Ready to accept connections" in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not get ready")
        else:
            raise RuntimeError(f"redis-server exited at start: {self.log_path.read_text(errors='replace')}")
        self.log.flush()
        # keep draining its output so that it never blocks on a full pipe
        import threading
        out, log = self.proc.stdout, self.log
        threading.Thread(target=lambda: [log.write(l) for l in out], daemon=True).start()

    def kill(self):
        """SIGKILL: Redis is gone at once, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            wait_or_kill(self.proc, 30, "redis-server", lambda: "")

    def cli(self, *args: str, last: bytes | None = None) -> str:
        """redis-cli's output; `last`, if given, is the command's last argument, read from
        stdin (-x) so that it may hold any bytes."""
        argv = [os.environ.get("REDIS_CLI_BIN", "redis-cli"), "-p", str(self.port),
                *(["--no-auth-warning", "-a", self.password] if self.password else []),
                *(["-x"] if last is not None else []), *args]
        return subprocess.run(argv, input=last, capture_output=True, check=True,
                              timeout=30).stdout.decode(errors="replace")

    @property
    def password(self) -> str | None:
        return self.extra[self.extra.index("--requirepass") + 1] if "--requirepass" in self.extra else None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"
