"""The examples under Examples/, run as their READMEs say, through live-server (the view
runtime in headless Chromium, skipped without it).

LIVE_BIN       the live binary (default .build/release/live)
LIVE_EXAMPLES  the folder of the example binaries (default .build/release)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

from liveserver import ROOT
from test_cli import Sub, count, run, wait_for


def example(name: str) -> str:
    d = Path(os.environ.get("LIVE_EXAMPLES", ".build/release"))
    return str((d if d.is_absolute() else ROOT / d) / name)


def test_agent_works_on_a_task_and_reports_progress(servers):
    server = servers.start()
    agent = subprocess.Popen([example("live-example-agent"), server.ws], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    servers.defer(lambda: (agent.terminate(), agent.wait(timeout=30)))
    assert agent.stdout.readline() == "agent: waiting for tasks\n"
    task = uuid.uuid4().hex[:8]
    watcher = Sub(server.ws, f"task:{task}", "--body-only")
    servers.defer(watcher.stop)
    wait_for(lambda: count(server.ws, f"task:{task}") == 1, what="live sub joined")
    r = run("pub", server.ws, "tasks", json.dumps({"id": task, "steps": 3}))
    assert r.returncode == 0, r.stderr
    got = [json.loads(watcher.next()) for _ in range(4)]
    assert got == [{"progress": 1, "of": 3}, {"progress": 2, "of": 3}, {"progress": 3, "of": 3}, {"done": True}]


class ExampleServer:
    """An example that serves on --port 0 and prints "<name>: http://HOST:PORT/..." first."""

    def __init__(self, servers, name: str):
        self.proc = subprocess.Popen([example(name), "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        servers.defer(lambda: (self.proc.terminate(), self.proc.wait(timeout=30)))
        line = self.proc.stdout.readline()
        m = re.match(r"^\S+: http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        self.port = int(m.group(1))
        self.ws = f"ws://127.0.0.1:{self.port}/ws"

    def http(self, method: str, path: str) -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())


def test_sync_notifies_each_change_and_a_pull_converges(servers):
    svc = ExampleServer(servers, "live-example-sync")
    watcher = Sub(svc.ws, "scope:notes", "--body-only")
    servers.defer(watcher.stop)
    wait_for(lambda: count(svc.ws, "scope:notes") == 1, what="live sub joined")
    for i in range(1, 6):
        assert svc.http("POST", f"/notes?text=n{i}") == {"version": i}
    # every change announced, in order; a pull on hearing one sees at least that version
    for i in range(1, 6):
        assert json.loads(watcher.next()) == {"version": i}
        assert svc.http("GET", "/notes")["version"] >= i
    # a client that heard nothing (it was not even connected) converges with one pull
    assert svc.http("GET", "/notes") == {"version": 5, "notes": ["n1", "n2", "n3", "n4", "n5"]}


def test_streaming_every_log_line_and_throttled_progress(servers):
    server = servers.start("--throttle", "progress:200", "--rate-limit", "0")  # the job sends fast
    job = uuid.uuid4().hex[:8]
    logs = Sub(server.ws, f"logs:{job}", "--body-only")
    progress = Sub(server.ws, f"progress:{job}", "--body-only")
    servers.defer(logs.stop)
    servers.defer(progress.stop)
    wait_for(lambda: count(server.ws, f"logs:{job}") == 1 and count(server.ws, f"progress:{job}") == 1,
             what="both live subs joined")
    steps = 300
    r = subprocess.run([example("live-example-streaming"), server.ws, job, str(steps)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert [json.loads(logs.next()) for _ in range(steps)] == [f"step {i} of {steps} done" for i in range(1, steps + 1)]
    seen = []
    while not seen or seen[-1] != {"percent": 100}:
        seen.append(json.loads(progress.next()))
    # throttled: a few updates, rising, ending at 100 (the newest held back is never lost)
    assert len(seen) < steps
    percents = [m["percent"] for m in seen]
    assert percents == sorted(percents)


def test_view_runtime_page_ends_on_the_latest_patch(servers, tmp_path):
    from cdp import Chromium, find_chromium
    if find_chromium() is None:
        pytest.skip("no chromium installed")
    svc = ExampleServer(servers, "live-example-view")
    browser = Chromium(tmp_path / "chromium")
    browser.start()
    servers.defer(browser.close)
    page = browser.open(f"http://127.0.0.1:{svc.port}/")
    page.wait_for("document.querySelector('#status').dataset.joined === '1'", what="the page joined")
    n = 2000
    assert svc.http("POST", f"/run?n={n}") == {"published": n}
    page.wait_for(f"document.querySelector('#count').dataset.count === '{n}'", timeout=60,
                  what="the page showing the last patch")
    count = page.evaluate("({...document.querySelector('#count').dataset})")
    assert "backwards" not in count  # never an older patch after a newer one
    assert 1 <= int(count["applied"]) <= n
    print(f"view runtime: the page applied {count['applied']} of {n} patches")
    assert page.evaluate("document.querySelector('#label').textContent") == f"patch {n} of {n}"


def test_streaming_watched_in_a_page(servers, tmp_path):
    from cdp import Chromium, find_chromium
    if find_chromium() is None:
        pytest.skip("no chromium installed")
    server = servers.start("--throttle", "progress:200", "--rate-limit", "0")
    browser = Chromium(tmp_path / "chromium")
    browser.start()
    servers.defer(browser.close)
    job = uuid.uuid4().hex[:8]
    page_file = ROOT / "Examples" / "streaming" / "watch.html"
    page = browser.open(f"{page_file.as_uri()}?ws={server.ws}&job={job}")
    page.wait_for("document.querySelector('#status').dataset.joined === '1'", what="the page joined")
    steps = 100
    r = subprocess.run([example("live-example-streaming"), server.ws, job, str(steps)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    page.wait_for(f"document.querySelectorAll('#log li').length === {steps}"
                  " && document.querySelector('#bar').value === 100", timeout=60, what="every line and 100%")
    lines = page.evaluate("Array.from(document.querySelectorAll('#log li')).map((li) => li.textContent)")
    assert lines == [f"step {i} of {steps} done" for i in range(1, steps + 1)]
