"""Interest (--interest): the node-wide on_interest callback, which a broker between server
processes uses to be subscribed to a topic exactly while the node has a local subscriber.
The test server broadcasts each call to every session as "interest +T" or "interest -T"
(and logs them in call order for /interestlog);
a "/broadcast MARK" sent after the actions shows that nothing else was reported before it
(a session's loop delivers the broadcasts it is handed in order)."""

import pytest


@pytest.fixture
def srv(live):
    return live.server("--interest", "--loops", 2)


def events_until(watcher, mark):
    """The interest events the watcher receives before the mark."""
    seen = []
    while True:
        text = watcher.recv_text()
        if text == mark:
            return seen
        if text.startswith("interest "):
            seen.append(text[len("interest "):])


def mark(c, watcher, name):
    c.send_text(f"/broadcast mark {name}")
    return events_until(watcher, f"mark {name}")


def cmd(c, text):
    """The reply to a command, past the broadcasts every session also hears."""
    c.send_text(text)
    while True:
        reply = c.recv_text()
        if not reply.startswith(("interest ", "mark ")):
            return reply


def test_first_subscriber_on_any_loop_and_last_leaving_are_reported_once(live, srv):
    watcher = live.ws(srv)
    clients = [live.ws(srv) for _ in range(8)]  # spread over both loops
    for c in clients:
        assert cmd(c, "/sub room") == "ok sub room"
    assert mark(clients[0], watcher, "m1") == ["+room"]
    # leave three ways; the last one out is reported, the others are not
    for c in clients[:3]:
        assert cmd(c, "/unsub room") == "ok unsub room"
    clients[3].send_close(1000)
    clients[4].abort()
    clients[5].close()
    assert mark(clients[6], watcher, "m2") == []
    assert cmd(clients[6], "/unsub room") == "ok unsub room"
    assert mark(clients[7], watcher, "m3") == []
    clients[7].abort()
    assert watcher.recv_text() == "interest -room"
    # and it comes back with the next subscriber
    again = live.ws(srv)
    assert cmd(again, "/sub room") == "ok sub room"
    assert mark(again, watcher, "m4") == ["+room"]


def test_a_subscriber_that_is_not_the_first_reports_nothing(live, srv):
    watcher = live.ws(srv)
    a, b = live.ws(srv), live.ws(srv)
    assert cmd(a, "/sub t") == "ok sub t"
    assert cmd(b, "/sub t") == "ok sub t"
    assert cmd(b, "/sub t") == "ok sub t"  # twice: a no-op
    assert cmd(b, "/unsub t") == "ok unsub t"
    assert cmd(b, "/unsub t") == "ok unsub t"  # absent: a no-op
    assert mark(b, watcher, "m") == ["+t"]


def test_many_topics_come_and_go(live, srv):
    watcher = live.ws(srv)
    c = live.ws(srv)
    names = [f"topic-{i}" for i in range(100)]
    for n in names:
        assert cmd(c, f"/sub {n}") == f"ok sub {n}"
    assert mark(c, watcher, "m1") == [f"+{n}" for n in names]
    other = live.ws(srv)
    c.abort()
    got = set()
    while len(got) < len(names):
        text = watcher.recv_text()
        assert text.startswith("interest -"), text
        got.add(text[len("interest -"):])
    assert got == set(names)
    assert mark(other, watcher, "m2") == []


def test_churn_on_both_loops_alternates_and_ends_inactive(live, srv):
    """Sessions on both loops join and leave one topic over and over, at once: the node's
    calls for it must alternate +, -, +, ... and end with "-" once every one has left."""
    watcher = live.ws(srv)
    clients = [live.ws(srv) for _ in range(8)]
    for _ in range(20):
        for c in clients:
            c.send_text("/sub churn")
        for c in clients:
            c.send_text("/unsub churn")
    for c in clients:  # every command taken: /id's answer (a number) comes after all the rest
        c.send_text("/id")
        while not c.recv_text().isdigit():
            pass
    # the calls in the order the server made them (broadcasts from two loops may reach the
    # watcher in either order, so the test server also logs them)
    seen = cmd(watcher, "/interestlog").split()[1:]
    assert seen, "the topic never became active"
    assert seen == ["+churn", "-churn"] * (len(seen) // 2), seen
