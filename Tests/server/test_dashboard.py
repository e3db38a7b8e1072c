"""live-server's GET /dashboard (issue 15) in headless Chromium: the page joins the reserved
topic the server publishes its figures on, and shows deliveries rising while a load runs.
Only the page may join that topic, nobody may publish there, and without --dashboard none of
it exists.

Skipped when no Chromium is installed. Every wait polls real page state with a deadline.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from cdp import Chromium, find_chromium
from liveproto import Client, Msg, http_get

WAIT = 45.0  # generous: Chromium and the server share a loaded 2-core machine
TOPIC = "live:dashboard"


def refused(c: Client, type: str, topic: str) -> str:
    m = c.request(type, topic, '{"n":1}' if type == "publish" else None)
    assert m.type == "error", m
    return m.json_body()["reason"]


def test_only_the_dashboard_may_join_and_nobody_may_publish(servers):
    srv = servers.start("--dashboard")
    c = Client(srv.ws, "json")
    servers.defer(c.close)
    assert refused(c, "join", TOPIC) == "not allowed"
    assert refused(c, "publish", TOPIC) == "not allowed"
    # a made-up token is no token
    forged = Client(srv.ws + "?dashboard=00", "json")
    servers.defer(forged.close)
    assert refused(forged, "join", TOPIC) == "not allowed"


def test_without_the_flag_there_is_no_dashboard(servers):
    srv = servers.start()
    status, _, _ = http_get(f"{srv.http}/dashboard")
    assert status == 404
    c = Client(srv.ws, "json")
    servers.defer(c.close)
    assert refused(c, "join", TOPIC) == "not allowed"


@pytest.mark.skipif(find_chromium() is None, reason="no chromium installed")
def test_the_page_shows_deliveries_rising_while_a_load_runs(servers, tmp_path):
    srv = servers.start("--dashboard", "--rate-limit", 0, "--no-presence-events")
    browser = Chromium(tmp_path / "chromium")
    browser.start()
    stop = threading.Event()
    load = None
    errors: list[BaseException] = []
    try:
        page = browser.open(f"{srv.http}/dashboard")
        # two samples: the first rate needs a previous figure
        page.wait_for("window.dashboard && window.dashboard.samples >= 2", WAIT, "the page's first figures")
        quiet = page.evaluate("window.dashboard.deliveries")

        # the load: a publisher and three subscribers that read everything, until stopped
        t = f"room:{uuid.uuid4().hex[:8]}"
        subs = [Client(srv.ws, "json") for _ in range(3)]
        pub = Client(srv.ws, "json")
        for c in subs + [pub]:
            servers.defer(c.close)
        for c in subs:
            c.join(t)

        def run():
            try:
                while not stop.is_set():
                    pub.send("publish", t, None, '{"n":1}')
                    for c in subs:
                        assert c.recv() == Msg("message", t, "", b'{"n":1}')
            except BaseException as e:  # reported by the test, not lost in the thread
                errors.append(e)

        load = threading.Thread(target=run, daemon=True)
        load.start()
        page.wait_for(f"window.dashboard.deliveries > {quiet} + 100", WAIT, "deliveries to rise")
        first = page.evaluate("window.dashboard.deliveries")
        page.wait_for(f"window.dashboard.deliveries > {first}", WAIT, "deliveries to keep rising")
        # what the page draws: a deliveries-per-second figure above zero, and a line
        page.wait_for("Number(document.querySelector('#now-deliveries').textContent.replace(/,/g, '')) > 0",
                      WAIT, "the deliveries chart to show a rate")
        points = page.evaluate("document.querySelector('#line-deliveries').getAttribute('points')")
        assert points and len(points.split()) >= 2, points
        assert page.evaluate("document.querySelector('#state').textContent") == "open"
        assert not page.exceptions(), page.exceptions()
        assert not errors, errors
    finally:
        stop.set()
        if load:
            load.join(timeout=30)
        browser.close()
