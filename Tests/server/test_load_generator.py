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


def run_usage(*args) -> subprocess.CompletedProcess:
    """live-load with a command line that must be answered at once, before any connection:
    the port given points at nothing (port 1), so a mistake taken for a run would show as
    a RESULT line or a timeout."""
    binary = load_binary()
    if not binary.exists():
        pytest.fail(f"{binary} missing: swift build -c release --product live-load")
    return subprocess.run([str(binary), *[str(a) for a in args]], capture_output=True, text=True, timeout=10)


def test_workers_refuse_window_fanout():
    p = run_usage("fanout", "--subscribers", "10", "--workers", "2", "--port", 1)
    assert p.returncode == 64 and "--workers" in p.stderr, (p.returncode, p.stderr)
    assert p.stdout == "", p.stdout


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_scenarios_and_every_default_without_running(flag):
    # it used to run a 10-second echo benchmark and exit 0
    p = run_usage("echo", flag, "--port", 1)
    assert p.returncode == 0, p.stderr
    assert "\nRESULT " not in p.stdout and "usage: live-load" in p.stdout, p.stdout
    for scenario in ("connect", "echo", "fanout", "topics", "presence"):
        assert f"  {scenario} " in p.stdout, scenario
    defaults = {"--host": "127.0.0.1", "--port": "8080", "--path": "/ws", "--connections": "100",
                "--subscribers": "1000", "--window": "32", "--rate": "0", "--duration": "10",
                "--warmup": "1", "--body": "64", "--label": "server", "--concurrency": "256",
                "--slow": "0", "--workers": "1", "--pid": "none"}
    lines = {line.split()[0]: line for line in p.stdout.splitlines() if line.startswith("  --")}
    for option, default in defaults.items():
        assert option in lines, option
        assert lines[option].rstrip().endswith(f"[{default}]"), lines[option]


@pytest.mark.parametrize("args, says", [
    (["fanut"], "unknown scenario 'fanut'"),          # used to run echo
    ([], "which scenario"),
    (["echo", "extra"], "'extra' is extra"),
    (["echo", "--conections", "5"], "unknown option --conections"),
    (["echo", "-x"], "unknown option -x"),
    (["echo", "--port"], "--port needs a value"),
    (["echo", "--port", "80x"], "--port: '80x' is not a whole number"),  # atoi made it 80
    (["echo", "--port", "70000"], "--port: 70000 is out of range 1-65535"),
    (["echo", "--connections", "ten"], "--connections: 'ten' is not a whole number"),  # atoi made it 0
    (["echo", "--connections", "0"], "--connections: 0 is out of range"),
    (["echo", "--connections", "99999999999999999999"], "is not a whole number"),
    (["fanout", "--subscribers", "-3"], "--subscribers: -3 is out of range"),
    (["fanout", "--rate", "1e"], "--rate: '1e' is not a number"),
    (["echo", "--duration", "nan"], "--duration: 'nan' is not a number"),
    (["echo", "--duration", "0"], "--duration: 0 is out of range"),
    (["echo", "--body", "20000"], "--body: 20000 is out of range 0-16384"),
    (["echo", "--workers", "0"], "--workers: 0 is out of range"),
    (["echo", "--host", "localhost"], "--host: 'localhost' is not an IPv4 address"),
    (["fanout", "--subscribers", "2", "--slow", "3"], "more slow subscribers"),
])
def test_mistakes_are_refused_with_exit_64_and_named(args, says):
    p = run_usage(*args, "--port", 1) if "--port" not in args else run_usage(*args)
    assert p.returncode == 64, (p.returncode, p.stdout, p.stderr)
    assert says in p.stderr, p.stderr
    assert p.stdout == "", p.stdout
