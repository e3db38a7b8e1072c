"""Process helpers shared by the two Python suites (Tests/e2e and Tests/server).

Both start a server with --port 0 and learn its port from the first line it prints on
stdout; both must fail with the server's own log when it dies or hangs before that line.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from typing import Callable


def read_first_line(proc: subprocess.Popen, timeout: float, name: str, log: Callable[[], str]) -> bytes:
    """The first line proc writes on stdout (with its newline), read byte by byte so that
    nothing after it is consumed. Kills proc and raises RuntimeError, with log() in the
    message, when the line does not come within `timeout` seconds or proc exits first."""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{name} printed no first line within {timeout}s:\n{log()}")
        ch = os.read(fd, 1)
        if not ch:
            proc.wait()
            raise RuntimeError(f"{name} exited ({proc.returncode}) before listening:\n{log()}")
        line += ch
    return line


def wait_or_kill(proc: subprocess.Popen, timeout: float, what: str, log: Callable[[], str]) -> int:
    """proc's exit status once it exits; when it has not within `timeout` seconds, kills it
    and fails the test with log() in the message."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{what} did not exit within {timeout}s of a shutdown signal\n{log()}")


def run_cleanups(cleanups: list) -> None:
    """Runs the deferred cleanups, newest first; a client that is already gone is fine."""
    while cleanups:
        fn = cleanups.pop()
        try:
            fn()
        except Exception:
            pass


def exit_failures(servers, name: Callable[[object], str]) -> list[str]:
    """Waits out each server (already sent its shutdown signal) and describes every one that
    did not exit 0, with the end of its log. A server needs wait(), returncode, argv and
    stderr()."""
    failures = []
    for s in servers:
        try:
            rc = s.wait() if s.returncode is None else s.returncode
        except AssertionError as e:
            failures.append(str(e))
            continue
        if rc != 0:
            failures.append(f"{name(s)} {' '.join(s.argv[1:])} exited with {rc} after SIGTERM:\n"
                            + s.stderr()[-6000:])
    return failures


def wait_for_text(log: Callable[[], str], text: str, timeout: float) -> str:
    """The first line of log() that contains `text`, once one does; fails after `timeout`
    seconds with the log in the message. Polls the log (a file the process appends to)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in log().splitlines():
            if text in line:
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no line with {text!r} within {timeout}s:\n{log()[-4000:]}")
        time.sleep(0.02)  # polling period of a file another process writes
