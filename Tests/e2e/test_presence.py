"""Presence (--presence): the cross-loop index of who is subscribed to a topic (/who) and
the batched join/leave events, which the test server publishes to the topic itself as
"presence T +id,id -id,id"."""

import random

import pytest

from wsraw import OP_TEXT, build_frame, wait_for


def parse_presence(text):
    words = text.split(" ")
    assert words[0] == "presence" and len(words) == 4, text
    _, topic, plus, minus = words
    assert plus[0] == "+" and minus[0] == "-", text
    ids = lambda s: {int(x) for x in s[1:].split(",") if x}  # noqa: E731
    return topic, ids(plus), ids(minus)


def who(c, topic="room"):
    reply = c.command(f"/who {topic}")
    prefix = f"who {topic} "
    assert reply.startswith(prefix), reply
    return {int(x) for x in reply[len(prefix):].split(",") if x}


def session_id(c):
    return int(c.command("/id"))


class Observer:
    """A session subscribed to the topic, collecting the presence events it receives."""

    def __init__(self, live, srv, topic="room"):
        self.c = live.ws(srv)
        self.id = session_id(self.c)
        self.topic = topic
        assert self.c.command(f"/sub {topic}") == f"ok sub {topic}"
        t, joined, left = parse_presence(self.c.recv_text())
        assert (t, joined, left) == (topic, {self.id}, set())  # its own join

    def next(self):
        t, joined, left = parse_presence(self.c.recv_text())
        assert t == self.topic
        assert not (joined & left)  # net changes only
        return joined, left

    def collect(self, want_joined=frozenset(), want_left=frozenset()):
        """Reads events until exactly these ids joined and left, each reported once."""
        joined, left = set(), set()
        while joined != set(want_joined) or left != set(want_left):
            j, lft = self.next()
            assert not (j & joined) and not (lft & left), f"reported twice: {j & joined} {lft & left}"
            joined |= j
            left |= lft
            assert joined <= set(want_joined) and left <= set(want_left), (joined, left)


@pytest.fixture
def srv(live):
    return live.server("--presence", "--loops", 2)


def test_who_lists_subscribers_across_loops(live, srv):
    clients = [live.ws(srv) for _ in range(8)]
    ids = [session_id(c) for c in clients]
    for c in clients:
        c.send_text("/sub room")
    for c in clients:
        assert c.recv_text() == "ok sub room"
    asker = live.ws(srv)  # not subscribed
    assert who(asker) == set(ids)
    assert who(asker, "elsewhere") == set()


def test_who_follows_leaves_in_any_order(live, srv):
    """Removals swap entries inside the shared index (across loops): after each one the
    index still holds exactly the remaining sessions."""
    clients = [live.ws(srv) for _ in range(10)]
    ids = [session_id(c) for c in clients]
    for c in clients:
        assert c.command("/sub room") == "ok sub room"
    asker = live.ws(srv)
    remaining = dict(zip(ids, clients))
    rng = random.Random(7)
    order = ids[:]
    rng.shuffle(order)
    for k, sid in enumerate(order):
        c = remaining.pop(sid)
        if k % 3 == 0:
            c.send_text("/unsub room")
        elif k % 3 == 1:
            c.send_close(1000)
        else:
            c.abort()
        wait_for(lambda: who(asker) == set(remaining), what=f"who without {sid}")
    assert who(asker) == set()


def test_join_and_leave_events(live, srv):
    obs = Observer(live, srv)
    clients = [live.ws(srv) for _ in range(6)]
    ids = [session_id(c) for c in clients]
    for c in clients:
        c.send_text("/sub room")
    obs.collect(want_joined=ids)
    # leave three ways: unsubscribe, close handshake, vanish
    clients[0].send_text("/unsub room")
    clients[1].send_text("/unsub room")
    clients[2].send_close(1000)
    clients[3].send_close(4000, "bye")
    clients[4].abort()
    clients[5].close()
    obs.collect(want_left=ids)
    assert who(obs.c) == {obs.id}


def test_subscribe_twice_joins_once(live, srv):
    obs = Observer(live, srv)
    c = live.ws(srv)
    cid = session_id(c)
    assert c.command("/sub room") == "ok sub room"
    obs.collect(want_joined={cid})
    assert c.recv_text().startswith("presence room +")  # its own join
    assert c.command("/sub room") == "ok sub room"
    assert c.command("/unsub room") == "ok unsub room"
    obs.collect(want_left={cid})  # the second /sub reported nothing


def test_join_and_leave_in_one_batch_are_not_reported(live, srv):
    """Net changes only: a /sub and /unsub handled in the same loop turn (one write, so
    one read) cancel out. The session's next join is then the observer's next event."""
    obs = Observer(live, srv)
    c = live.ws(srv)
    cid = session_id(c)
    c.send(build_frame(OP_TEXT, "/sub room") + build_frame(OP_TEXT, "/unsub room"))
    assert c.recv_text() == "ok sub room"
    assert c.recv_text() == "ok unsub room"
    assert c.command("/sub room") == "ok sub room"
    assert obs.next() == ({cid}, set())


def test_events_are_batched_by_interval(live):
    """With --presence-ms, joins on a loop within the interval arrive as one event."""
    srv = live.server("--presence", "--presence-ms", 1000, "--loops", 1)
    first = live.ws(srv)
    clients = [first] + [live.ws(srv) for _ in range(4)]
    ids = {session_id(c) for c in clients}
    for c in clients:
        assert c.command("/sub room") == "ok sub room"
    # all five joined within one interval (the timer starts at the first join)
    joined, left = parse_presence(first.recv_text())[1:]
    assert (joined, left) == (ids, set())


def test_join_and_leave_within_an_interval_cancel(live):
    srv = live.server("--presence", "--presence-ms", 1000, "--loops", 1)
    obs_c = live.ws(srv)
    oid = session_id(obs_c)
    assert obs_c.command("/sub room") == "ok sub room"
    c = live.ws(srv)
    assert c.command("/sub room") == "ok sub room"
    assert c.command("/unsub room") == "ok unsub room"
    # the batch holds the observer's join only: c joined and left within it
    assert parse_presence(obs_c.recv_text())[1:] == ({oid}, set())


def test_presence_of_other_topics_is_separate(live, srv):
    obs = Observer(live, srv, "red")
    c = live.ws(srv)
    cid = session_id(c)
    c.send(build_frame(OP_TEXT, "/sub blue") + build_frame(OP_TEXT, "/sub red"))
    assert c.recv_text() == "ok sub blue"
    assert c.recv_text() == "ok sub red"
    assert obs.next() == ({cid}, set())
    assert who(obs.c, "blue") == {cid}
    assert who(obs.c, "red") == {obs.id, cid}


def test_who_without_presence_is_empty(live):
    srv = live.server()
    c = live.ws(srv)
    assert c.command("/sub room") == "ok sub room"
    assert who(c) == set()


def test_shutdown_with_presence(live):
    """Every session leaves its topics while the server shuts down; the leave events go
    out (or are dropped) without a leak or a missing on_close."""
    srv = live.server("--presence", "--loops", 2, "--close-ms", 300)
    obs = Observer(live, srv)
    clients = [live.ws(srv) for _ in range(10)]
    ids = [session_id(c) for c in clients]
    for c in clients:
        c.send_text("/sub room")
    obs.collect(want_joined=ids)
    srv.terminate()
    rc = srv.wait()
    assert rc == 0, srv.stderr()[-4000:]
