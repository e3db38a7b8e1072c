#!/usr/bin/env python3
"""Takes docs/demo.png: the demo page of live-server with two participants chatting.

    LIVE_SERVER_BIN=.build-e2e/release/live-server python Tests/server/screenshot.py [OUT.png]

Starts live-server on a free port and headless Chromium, opens the page twice (alice and
bob in the room "lobby"), exchanges a few lines, waits until bob's page shows all of them,
and captures bob's page at 1200x800. Not a test: run it by hand when the page changes.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cdp import Chromium, find_chromium  # noqa: E402
from liveserver import ROOT, LiveServer  # noqa: E402

WAIT = 60.0
CONVERSATION = [
    ("alice", "hi bob! are you on the new server?"),
    ("bob", "yes: one WebSocket, JSON frames, live.js reconnects on its own"),
    ("alice", "nice, the messages show up at once here"),
    ("bob", "try killing the server, the page comes back and rejoins the room"),
    ("alice", "will do"),
]


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "demo.png"
    if not find_chromium():
        print("no chromium: install the Debian package chromium", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="live-screenshot-") as tmp:
        server = LiveServer([], Path(tmp) / "live-server.log")
        try:
            with Chromium(Path(tmp) / "chromium") as browser:
                pages = {name: browser.open(f"{server.http}/?name={name}&room=lobby&autojoin=1", 1200, 800)
                         for name in ("alice", "bob")}
                for page in pages.values():
                    page.wait_for("document.body && document.body.dataset.joined === 'lobby'", WAIT, "the join")
                for name, text in CONVERSATION:
                    pages[name].evaluate(f"window.liveDemo.send({json.dumps(text)})")
                    for page in pages.values():  # keep the order the same on both pages
                        page.wait_for(
                            "Array.from(document.querySelectorAll('#log li[data-text]')).some((li) => "
                            f"li.dataset.from === {json.dumps(name)} && li.dataset.text === {json.dumps(text)})",
                            WAIT, f"the line {text!r}")
                bob = pages["bob"]
                # the traffic counter is refreshed every 250 ms: wait until it shows every line
                bob.wait_for(f"document.querySelector('#total').textContent === '{len(CONVERSATION)}'", WAIT,
                             "the counter")
                bob.evaluate("document.activeElement && document.activeElement.blur(), true")
                out.parent.mkdir(parents=True, exist_ok=True)
                bob.screenshot(out)
        finally:
            server.stop()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
