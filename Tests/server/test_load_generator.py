"""live-load against live-server: the instrument itself, through its RESULT lines.

Figures are not asserted (they belong to bench/RESULTS.md); what is asserted is that the
generator counts right: every connection opened, every publish delivered to every
subscriber, and --workers adding its processes up to the same totals one process gives.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from liveserver import ROOT

LOAD_TIMEOUT = 120.0


def load_binary() -> Path:
    p = Path(os.environ.get("LIVE_LOAD_BIN", ".build/release/live-load"))
    return p if p.is_absolute() else ROOT / p


def run_load(server, *args) -> dict[str, str]:
    binary = load_binary()
    if not binary.exists():
        pytest.fail(f"{binary} missing: swift build -c release --product live-load")
    p = subprocess.run([str(binary), *[str(a) for a in args], "--port", str(server.port),
                        "--pid", str(server.proc.pid)],
                       capture_output=True, text=True, timeout=LOAD_TIMEOUT)
    assert p.returncode == 0, p.stderr
    lines = [line for line in p.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, p.stdout
    return dict(item.partition("=")[::2] for item in lines[0].split()[1:])


@pytest.mark.parametrize("workers", [1, 3])
def test_connect_opens_every_connection(servers, workers):
    srv = servers.start("--no-presence-events")
    r = run_load(srv, "connect", "--connections", 600, "--workers", workers)
    assert (r["connections"], r["failed"]) == ("600", "0"), r
    assert float(r["rss_after_kib"]) > 0 and float(r["rss_per_connection_kib"]) > 0, r
    if workers > 1:
        assert r["workers"] == str(workers), r


@pytest.mark.parametrize("workers", [1, 3])
def test_fanout_at_a_rate_delivers_everything(servers, workers):
    # 300 subscribers, 40 publishes a second for 1 s measured: every one of them reaches
    # every subscriber, whichever process holds it
    srv = servers.start("--no-presence-events")
    r = run_load(srv, "fanout", "--subscribers", 300, "--rate", 40, "--duration", 1, "--warmup", 0.5,
                 "--workers", workers)
    assert (r["subscribers"], r["published"], r["lost"], r["dead"]) == ("300", "40", "0", "0"), r
    assert float(r["deliveries_per_s"]) > 0, r
    assert float(r["server_cpu_pct"]) >= 0, r


def test_workers_add_up_echo_and_topics(servers):
    # closed loops far above live-server's default rate limit, which is not what this tests
    srv = servers.start("--no-presence-events", "--rate-limit", "0")
    for scenario in ("echo", "topics"):
        r = run_load(srv, scenario, "--connections", 40, "--duration", 0.5, "--warmup", 0.2, "--workers", 2)
        assert (r["connections"], r["dead"], r["workers"]) == ("40", "0", "2"), r
        assert int(r["samples"]) > 0, r


def test_workers_refuse_window_fanout(servers):
    srv = servers.start("--no-presence-events")
    p = subprocess.run([str(load_binary()), "fanout", "--subscribers", "10", "--workers", "2",
                        "--port", str(srv.port)], capture_output=True, text=True, timeout=LOAD_TIMEOUT)
    assert p.returncode == 2 and "--workers" in p.stderr, (p.returncode, p.stderr)
