"""Fixtures for the scale-out tests: live-server nodes sharing topics through a real
redis-server that the tests start (Tests/cluster/redis.py) and stop.

LIVE_SERVER_BIN  the live-server binary (default .build/release/live-server).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "server"))
sys.path.insert(0, str(HERE.parent / "harness"))

from liveproto import http_get  # noqa: E402
from liveserver import LiveServer  # noqa: E402
from process import exit_failures, run_cleanups  # noqa: E402
from redisproc import Redis  # noqa: E402

WAIT = 30.0  # an upper bound for reconnects and subscriptions on a loaded machine


class Cluster:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.redis = Redis(tmp_path / "redis.log", extra=("--enable-debug-command", "local"))
        self.nodes: list[LiveServer] = []
        self.cleanups: list = []

    def node(self, *flags, name: str | None = None) -> LiveServer:
        name = name or f"n{len(self.nodes)}"
        s = LiveServer(["--redis", self.redis.url, "--node-id", name, "--rate-limit", "0",
                        *[str(f) for f in flags]], self.tmp_path / f"{name}.log")
        s.name = name
        self.nodes.append(s)
        return s

    def defer(self, fn):
        self.cleanups.append(fn)

    def health(self, node: LiveServer) -> tuple[int, dict]:
        status, _, body = http_get(node.http + "/healthz")
        fields = {}
        for line in body.decode().splitlines():
            if ": " in line:
                k, v = line.split(": ", 1)
                fields[k] = v
        return status, fields

    def wait_until(self, what: str, predicate, timeout: float = WAIT):
        """Polls an observable (Redis's or a node's state) until it holds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)  # the polling period of a real observable, not synchronisation

    def sharded(self) -> bool:
        return self.health(self.nodes[0])[1]["redis"].startswith("connected (sharded")

    def subscribers(self, topic: str) -> int:
        """How many nodes Redis has subscribed to the topic's channel."""
        verb = "SHARDNUMSUB" if self.sharded() else "NUMSUB"
        out = self.redis.cli("PUBSUB", verb, f"live:{topic}").split()
        return int(out[1]) if len(out) == 2 else 0

    def wait_subscribed(self, topic: str, nodes: int):
        self.wait_until(f"{nodes} nodes subscribed to {topic}", lambda: self.subscribers(topic) == nodes)

    def wait_connected(self, *nodes: LiveServer):
        for n in nodes:
            self.wait_until(f"{n.name} connected", lambda: self.health(n)[1].get("redis", "").startswith("connected"))

    def publish_raw(self, topic: str, payload: bytes | str):
        """What anyone with access to Redis could publish on a topic's channel."""
        data = payload.encode() if isinstance(payload, str) else payload
        self.redis.cli("SPUBLISH" if self.sharded() else "PUBLISH", f"live:{topic}", last=data)

    def finish(self):
        run_cleanups(self.cleanups)
        for s in self.nodes:
            if s.returncode is None:
                s.send_signal(signal.SIGTERM)
        failures = exit_failures([s for s in self.nodes if not s.killed], lambda s: "live-server")
        self.redis.stop()
        assert not failures, "\n\n".join(failures)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.finish()
