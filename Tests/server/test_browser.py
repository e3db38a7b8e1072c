"""The demo page and live.js in a real browser (headless Chromium over the DevTools
protocol): two participants chat; the server crashes (SIGKILL) and comes back on the same
port; the pages reconnect, rejoin their room, and chat again.

Skipped when no Chromium is installed (Debian package `chromium`; set CHROMIUM to point
elsewhere). Every wait polls real page state with a deadline.
"""

from __future__ import annotations

import json

import pytest

from cdp import Chromium, find_chromium
from certs import make_cert
from liveproto import Client, Msg

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no chromium installed")

WAIT = 45.0  # generous: Chromium and the server share a loaded 2-core machine

LOG = "Array.from(document.querySelectorAll('#log li[data-text]'))" \
      ".map((li) => [li.dataset.from || '', li.dataset.text])"
STATE = "document.querySelector('#state').dataset.state"
PEOPLE = "Array.from(document.querySelectorAll('#people li')).map((li) => li.textContent).sort()"
AWAY = "document.querySelector('#people').dataset.away !== undefined"


def system_lines(page, text: str) -> int:
    """How many lines of the page's log say exactly `text` (lines the page writes itself)."""
    return sum(1 for sender, t in page.evaluate(LOG) if not sender and t == text)


def has_line(sender: str, text: str) -> str:
    return (f"Array.from(document.querySelectorAll('#log li[data-text]'))"
            f".some((li) => li.dataset.from === {json.dumps(sender)} && li.dataset.text === {json.dumps(text)})")


def send(page, text: str):
    """liveDemo.send resolves once the server answered the publish (or it failed, which the
    page logs as a "not sent: ..." line)."""
    page.evaluate(f"window.liveDemo.send({json.dumps(text)})")
    failed = [t for _, t in page.evaluate(LOG) if t.startswith("not sent")]
    assert not failed, failed


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Chromium(tmp_path_factory.mktemp("chromium"))
    try:
        b.start()
        yield b
    finally:
        b.close()


@pytest.fixture
def pages(browser):
    """pages(url) -> a new page; every page is closed after the test."""
    opened = []

    def open_page(url):
        p = browser.open(url)
        opened.append(p)
        return p

    yield open_page
    for p in opened:
        try:
            browser.call("Target.closeTarget", {"targetId": p.target_id})
        except Exception:
            pass


def test_two_pages_chat_and_survive_a_server_crash(servers, pages):
    srv = servers.start()
    alice = pages(f"{srv.http}/?name=alice&room=t1&autojoin=1")
    bob = pages(f"{srv.http}/?name=bob&room=t1&autojoin=1")
    for p in (alice, bob):
        p.wait_for("document.body && document.body.dataset.joined === 't1'", WAIT, "the page to join t1")
    assert alice.evaluate(STATE) == "open"

    send(alice, "hello from alice")
    send(bob, "hello from bob")
    bob.wait_for(has_line("alice", "hello from alice"), WAIT, "bob to see alice's line")
    alice.wait_for(has_line("bob", "hello from bob"), WAIT, "alice to see bob's line")
    # each sees its own line too (the publisher is a subscriber), and no line twice
    for p in (alice, bob):
        log = [entry for entry in p.evaluate(LOG) if entry[0]]
        assert sorted(log) == [["alice", "hello from alice"], ["bob", "hello from bob"]], log

    for p in (alice, bob):
        p.wait_for(f"JSON.stringify({PEOPLE}) === '[\"alice\",\"bob\"]'", WAIT, "the people list to show both")

    # --- the server crashes, and comes back on the same port ---
    port = srv.port
    srv.kill()
    for p in (alice, bob):
        # the page noticed (it cannot be open again: nothing listens on the port now), and
        # has failed to reconnect at least once since: retries, all within one outage
        p.wait_for(f"{STATE} !== 'open'", WAIT, "the page to notice the crash")
        p.wait_for("window.liveDemo.client.attempt >= 2", WAIT, "the page to retry twice")
        # one line for the outage, however many retries; nobody is shown as present
        assert system_lines(p, "disconnected: reconnecting") == 1, p.evaluate(LOG)
        assert p.evaluate(AWAY) and p.evaluate(PEOPLE) == []
    srv2 = servers.start(port=port)
    assert srv2.port == port
    for p in (alice, bob):
        p.wait_for(f"{STATE} === 'open'", WAIT, "the page to reconnect")
    for p in (alice, bob):
        # refilled from the restarted server once both pages have joined again
        p.wait_for(f"JSON.stringify({PEOPLE}) === '[\"alice\",\"bob\"]'", WAIT, "the people list to refill")
        assert not p.evaluate(AWAY)
        assert (system_lines(p, "disconnected: reconnecting"), system_lines(p, "reconnected")) == (1, 1), \
            p.evaluate(LOG)
    # live.js sends its joins right after the socket opens, before anything else: an echo
    # round trip on the same connection comes back only after the server handled them
    for p in (alice, bob):
        echoed = p.evaluate("window.liveDemo.client.echo({probe: 1}).then((m) => m.type)")
        assert echoed == "echo"

    # the server side sees both subscribed again: a Python client's publish reaches both pages
    observer = Client(srv2.ws, "json", name="observer")
    servers.defer(observer.close)
    observer.join("t1")
    observer.send("publish", "t1", "o-1", '{"kind":"chat","from":"observer","text":"are you back?"}')
    back = b'{"kind":"chat","from":"observer","text":"are you back?"}'
    assert {recv_skipping_presence(observer), recv_skipping_presence(observer)} == {
        Msg("message", "t1", "", back), Msg("reply", "t1", "o-1")}
    for p in (alice, bob):
        p.wait_for(has_line("observer", "are you back?"), WAIT, "the page to get the observer's line")

    send(alice, "after restart")
    bob.wait_for(has_line("alice", "after restart"), WAIT, "bob to get alice's line after the restart")
    m = recv_skipping_presence(observer)
    assert m.type == "message" and json.loads(m.body) == {"kind": "chat", "from": "alice", "text": "after restart"}

    for p in (alice, bob):
        assert p.exceptions() == []


def recv_skipping_presence(client):
    """The next message that is not a presence event (joins and leaves come and go)."""
    while True:
        m = client.recv()
        if m.type != "presence":
            return m


def test_page_before_joining_is_neutral_and_asks_for_no_favicon(servers, pages):
    """Before joining, the status is a neutral "not joined" (it was a red "closed"), and the
    page's icon is inline, so the browser asks the server for no /favicon.ico (a 404)."""
    srv = servers.start()
    p = pages(f"{srv.http}/?name=ada")
    p.wait_for("window.liveDemo !== undefined", WAIT, "the page's script")
    assert p.evaluate(STATE) == "idle"
    assert p.evaluate("document.querySelector('#state').textContent") == "not joined"
    assert p.evaluate("window.liveDemo.client") is None  # nothing connects before a join
    icons = p.evaluate("Array.from(document.querySelectorAll('link[rel~=icon]')).map((l) => l.href)")
    assert len(icons) == 1 and icons[0].startswith("data:image/svg+xml,"), icons
    assert p.evaluate(f"new Promise((ok) => {{ const i = new Image(); i.onload = () => ok(i.width > 0); "
                      f"i.onerror = () => ok(false); i.src = {json.dumps(icons[0])}; }})"), "the icon does not load"


def test_page_reports_a_refused_publish(servers, pages):
    """The demo's policy seen from the page: a non-admin's line to announcements is refused
    and the page says so; an admin's goes through."""
    srv = servers.start()
    bob = pages(f"{srv.http}/?name=bob&room=announcements&autojoin=1")
    admin = pages(f"{srv.http}/?name=admin1&room=announcements&autojoin=1")
    for p in (bob, admin):
        p.wait_for("document.body && document.body.dataset.joined === 'announcements'", WAIT, "the join")
    bob.evaluate("window.liveDemo.send('let me in')")
    assert ["", "not sent: not allowed"] in bob.evaluate(LOG)
    send(admin, "maintenance at noon")
    bob.wait_for(has_line("admin1", "maintenance at noon"), WAIT, "bob to get the admin's line")
    assert not any(t == "let me in" for _, t in admin.evaluate(LOG))


def test_live_js_request_and_echo(servers, pages):
    """live.js on its own: replies settle requests by ref, errors reject with the reason."""
    srv = servers.start()
    p = pages(f"{srv.http}/?name=ada")
    p.wait_for("window.liveDemo !== undefined", WAIT, "the page's script")
    result = p.evaluate("""(async () => {
        const { LiveClient } = await import('/live.js');
        const c = new LiveClient(`ws://${location.host}/ws?name=ada`);
        await new Promise((resolve) => c.addEventListener('state', (e) => e.detail.state === 'open' && resolve()));
        const got = [];
        const joined = await c.join('js:room', (body) => got.push(body));
        const published = await c.publish('js:room', {n: 1, s: 'x'});
        const echoed = await c.echo([1, 2, 3]);
        let refused = null;
        try { await c.request({type: 'dance', topic: 'x'}); } catch (err) { refused = err.message; }
        let missing = null;
        try { await c.request({type: 'join'}); } catch (err) { missing = err.message; }
        while (got.length < 1) await new Promise((r) => setTimeout(r, 10));
        c.close();
        return {joined: [joined.type, joined.topic], published: published.type, echoed: echoed.body,
                refused, missing, got};
    })()""")
    assert result == {"joined": ["reply", "js:room"], "published": "reply", "echoed": [1, 2, 3],
                      "refused": "unknown type", "missing": "missing topic", "got": [{"n": 1, "s": "x"}]}


def test_chat_text_and_names_are_shown_as_text(servers, pages):
    srv = servers.start()
    p = pages(f"{srv.http}/?name=%3Ci%20id%3Dwho%3Eeve%3C%2Fi%3E&room=x&autojoin=1")
    p.wait_for("document.body && document.body.dataset.joined === 'x'", WAIT, "the join")
    html = '<b id="pwn">bold</b><img src=x onerror="window.pwned=1">'
    send(p, html)
    p.wait_for(has_line('<i id=who>eve</i>', html), WAIT, "the page to show its own line")
    assert p.evaluate("document.getElementById('pwn') === null && document.getElementById('who') === null "
                      "&& document.querySelector('#log img') === null && window.pwned === undefined")
    assert html in p.evaluate("document.querySelector('#log').textContent")


def test_people_list_shows_both_participants(servers, pages):
    srv = servers.start()
    alice = pages(f"{srv.http}/?name=alice&room=t2&autojoin=1")
    alice.wait_for("document.body && document.body.dataset.joined === 't2'", WAIT, "alice's join")
    bob = pages(f"{srv.http}/?name=bob&room=t2&autojoin=1")
    bob.wait_for("document.body && document.body.dataset.joined === 't2'", WAIT, "bob's join")
    # bob's page asked who is in the room right after its join; an echo sent now comes back
    # after that answer, and the page has updated its list by then
    who = bob.evaluate("window.liveDemo.client.who('t2').then((ids) => ({ids}), (err) => ({error: err.message}))")
    bob.evaluate("window.liveDemo.client.echo(null).then(() => true)")
    people = bob.evaluate("Array.from(document.querySelectorAll('#people li')).map((li) => li.textContent)")
    assert sorted(people) == ["alice", "bob"], f"people list {people}; who('t2') gave {who}"
    # live.js's count(): the true number of members, whatever who's cap
    assert bob.evaluate("window.liveDemo.client.count('t2')") == 2


def test_browser_session_with_compression(servers, pages):
    """live-server --deflate: Chromium negotiates permessage-deflate (the answer it gets:
    no context takeover either way) and large messages go compressed both ways, intact."""
    srv = servers.start("--deflate")
    p = pages(f"{srv.http}/?name=ada")
    p.wait_for("window.liveDemo !== undefined", WAIT, "the page's script")
    result = p.evaluate("""(async () => {
        const ws = new WebSocket(`ws://${location.host}/ws?name=ada`);
        const inbox = [];
        ws.onmessage = (e) => inbox.push(JSON.parse(e.data));
        await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
        const next = async (type) => {
            for (;;) {
                const i = inbox.findIndex((m) => m.type === type);
                if (i >= 0) return inbox.splice(i, 1)[0];
                await new Promise((r) => setTimeout(r, 10));
            }
        };
        ws.send(JSON.stringify({type: 'join', topic: 'z:room', ref: '1'}));
        await next('reply');
        const text = 'compressible words, again and again; '.repeat(60);
        ws.send(JSON.stringify({type: 'publish', topic: 'z:room', ref: '2', body: {text}}));
        const got = await next('message');
        const small = {type: 'echo', ref: '3', body: 'hi'};
        ws.send(JSON.stringify(small));
        const echoed = await next('echo');
        ws.close();
        return {extensions: ws.extensions, same: got.body.text === text, echoed: echoed.body};
    })()""")
    assert result == {"extensions": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                      "same": True, "echoed": "hi"}


def test_demo_page_over_https_and_wss(servers, pages, tmp_path):
    """live-server --tls-cert/--tls-key: the demo page loads over https and its client
    connects with wss:// (the page picks the scheme), and two participants chat (Chromium
    runs with --ignore-certificate-errors: the certificate is one the test generated)."""
    cert, key = make_cert(tmp_path, "localhost")
    srv = servers.start("--tls-cert", cert, "--tls-key", key)
    alice = pages(f"{srv.https}/?name=alice&room=tls&autojoin=1")
    bob = pages(f"{srv.https}/?name=bob&room=tls&autojoin=1")
    for p in (alice, bob):
        p.wait_for("document.body && document.body.dataset.joined === 'tls'", WAIT, "the page to join over wss")
        assert p.evaluate("location.protocol") == "https:"
        assert p.evaluate("window.liveDemo.client.url.startsWith('wss://')"), p.evaluate("window.liveDemo.client.url")
    send(alice, "hello over tls")
    bob.wait_for(has_line("alice", "hello over tls"), WAIT, "bob to see alice's line")
    assert not alice.exceptions() and not bob.exceptions()
