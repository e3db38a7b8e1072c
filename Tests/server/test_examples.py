"""The examples under Examples/, run as their READMEs say, through live-server.

LIVE_BIN       the live binary (default .build/release/live)
LIVE_EXAMPLES  the folder of the example binaries (default .build/release)
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

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
