"""A minimal headless-Chromium driver over the DevTools protocol (CDP), with websocket-client.

    with Chromium(tmp_dir) as browser:
        page = browser.open("http://127.0.0.1:8080/?name=ada")
        page.wait_for("document.body.dataset.joined === 'lobby'")
        page.evaluate("liveDemo.send('hi')")

One WebSocket to the browser; pages are targets attached with flatten=true, so every
command carries its page's sessionId. Commands are answered in a single-threaded loop:
events read while waiting for an answer are kept per session (`Page.events`). Every wait
has a deadline; polling is of real page state (Runtime.evaluate), never a fixed sleep.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import websocket  # websocket-client

START_TIMEOUT = 60.0  # Chromium's first start on a loaded 2-core machine can be slow
CALL_TIMEOUT = 30.0
DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://127\.0\.0\.1:(\d+)/devtools/browser/\S+)")


def find_chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class CDPError(Exception):
    pass


class Chromium:
    """A headless Chromium process (its own process group and throwaway profile)."""

    def __init__(self, profile_dir: Path, binary: str | None = None):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise RuntimeError("no chromium found")
        self.profile_dir = Path(profile_dir)
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.profile_dir / "chromium.log"
        self.proc: subprocess.Popen | None = None
        self.ws: websocket.WebSocket | None = None
        self.next_id = 0
        self.events: dict[str | None, list[dict]] = {}
        self.pages: list[Page] = []

    def __enter__(self) -> "Chromium":
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        argv = [
            self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
            f"--user-data-dir={self.profile_dir / 'profile'}",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-dev-shm-usage", "--disable-sync",
            "--disable-component-update", "--disable-default-apps", "--mute-audio",
            # two pages at once, neither in front: keep both of them running at full speed
            "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            # the https tests serve a certificate they generate
            "--ignore-certificate-errors",
            "about:blank",
        ]
        # a process group of its own, so that close() ends the browser and all its children
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        found = threading.Event()
        browser_url: list[str] = []

        def drain():  # reads stderr to its end (a full pipe would block Chromium)
            with open(self.log_path, "wb") as log:
                for raw in self.proc.stderr:
                    log.write(raw)
                    log.flush()
                    if not found.is_set():
                        m = DEVTOOLS_LINE.search(raw.decode(errors="replace"))
                        if m:
                            browser_url.append(m.group(1))
                            self.devtools_port = int(m.group(2))
                            found.set()
            found.set()  # EOF: Chromium exited

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(START_TIMEOUT) or not browser_url:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            self.close()
            raise RuntimeError(f"Chromium did not report its DevTools port within {START_TIMEOUT}s:\n{log[-4000:]}")
        # the browser endpoint, as /json/version tells it
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{self.devtools_port}/json/version", timeout=CALL_TIMEOUT) as r:
            version = json.load(r)
        self.version = version.get("Browser", "")
        self.ws = websocket.create_connection(version["webSocketDebuggerUrl"], timeout=CALL_TIMEOUT,
                                              suppress_origin=True, enable_multithread=False)

    # --- commands ---

    def call(self, method: str, params: dict | None = None, session_id: str | None = None,
             timeout: float = CALL_TIMEOUT) -> dict:
        self.next_id += 1
        msg_id = self.next_id
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session_id:
            msg["sessionId"] = session_id
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to {method} within {timeout}s")
            self.ws.settimeout(left)
            try:
                data = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(f"no answer to {method} within {timeout}s") from None
            if data.get("id") == msg_id:
                if "error" in data:
                    raise CDPError(f"{method}: {data['error']}")
                return data.get("result", {})
            if "method" in data:  # an event
                self.events.setdefault(data.get("sessionId"), []).append(data)

    def open(self, url: str, width: int = 1200, height: int = 800) -> "Page":
        target = self.call("Target.createTarget", {"url": "about:blank"})
        target_id = target["targetId"]
        session_id = self.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})["sessionId"]
        page = Page(self, target_id, session_id)
        page.call("Runtime.enable")
        page.call("Page.enable")
        page.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        page.call("Page.navigate", {"url": url})
        self.pages.append(page)
        return page

    def close(self):
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group this object started
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass


class Page:
    def __init__(self, browser: Chromium, target_id: str, session_id: str):
        self.browser = browser
        self.target_id = target_id
        self.session_id = session_id

    def call(self, method: str, params: dict | None = None, timeout: float = CALL_TIMEOUT) -> dict:
        return self.browser.call(method, params, self.session_id, timeout)

    @property
    def events(self) -> list[dict]:
        return self.browser.events.get(self.session_id, [])

    def exceptions(self) -> list[str]:
        """Uncaught exceptions (and unhandled rejections) the page reported so far."""
        out = []
        for e in self.events:
            if e["method"] == "Runtime.exceptionThrown":
                d = e["params"]["exceptionDetails"]
                out.append((d.get("exception") or {}).get("description") or d.get("text", "?"))
        return out

    def evaluate(self, expression: str, timeout: float = CALL_TIMEOUT):
        """The value of a JavaScript expression (promises awaited), by value."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True, "timeout": int(timeout * 1000)},
                      timeout=timeout + 5)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CDPError(f"{expression!r} threw: {(d.get('exception') or {}).get('description') or d.get('text')}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, what: str | None = None):
        """Evaluates `expression` until it is truthy (errors count as not yet, e.g. while
        the page loads); returns its value, or fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                last = self.evaluate(expression, timeout=max(1.0, deadline - time.monotonic()))
                if last:
                    return last
            except (CDPError, TimeoutError) as e:
                last = e
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or expression}; "
                                     f"last value {last!r}")
            time.sleep(0.05)  # the polling period of a real check, not synchronisation

    def screenshot(self, path: Path):
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        Path(path).write_bytes(base64.b64decode(data))
