"""Topics across event loops (--loops 2). The kernel spreads connections over the loops'
SO_REUSEPORT listeners in a way a test cannot choose, so each test opens enough sessions
that both loops almost surely get some."""

import pytest

from wsraw import OP_BINARY, OP_TEXT, build_frame, wait_for

N = 8


def open_sessions(live, srv, n=N):
    return [live.ws(srv) for _ in range(n)]


def subscribe(c, topic="room"):
    assert c.command(f"/sub {topic}") == f"ok sub {topic}"


def assert_nothing_pending(c):
    """The next frame is the reply to /id, so nothing (e.g. a publish) was in front."""
    c.send_text("/id")
    reply = c.recv_text()
    assert reply.isdigit(), f"expected the /id reply, got {reply!r}"


def stats_eq(srv, **want):
    def check():
        st = srv.stats()
        return st if all(st[k] == v for k, v in want.items()) else None

    return wait_for(check, what=f"stats {want}")


@pytest.fixture
def srv(live):
    return live.server("--loops", 2)


def test_publish_reaches_every_subscriber_once(live, srv):
    subs = open_sessions(live, srv)
    for c in subs:
        subscribe(c)
    st = stats_eq(srv, subscriptions=N)
    assert 1 <= st["topics"] <= 2  # one per loop that has a subscriber
    outsider = live.ws(srv)  # never subscribed
    publisher = subs[0]
    publisher.send_text("/pub room hello everyone")
    # the publisher is subscribed too: it gets the message and the acknowledgement; the
    # message is fanned out on its own loop before the reply is queued
    assert publisher.recv_text() == "hello everyone"
    assert publisher.recv_text() == "ok pub room"
    for c in subs[1:]:
        f = c.recv_message()
        assert (f.opcode, f.text) == (OP_TEXT, "hello everyone")
    for c in subs + [outsider]:
        assert_nothing_pending(c)


def test_publisher_need_not_subscribe(live, srv):
    subs = open_sessions(live, srv)
    for c in subs:
        subscribe(c)
    publisher = live.ws(srv)
    assert publisher.command("/pub room from outside") == "ok pub room"
    for c in subs:
        assert c.recv_text() == "from outside"
    assert_nothing_pending(publisher)


def test_unsubscribed_session_receives_nothing(live, srv):
    subs = open_sessions(live, srv)
    for c in subs:
        subscribe(c)
    leaver = subs[-1]
    assert leaver.command("/unsub room") == "ok unsub room"
    stats_eq(srv, subscriptions=N - 1)
    assert subs[0].command("/pub room after unsub") == "after unsub"
    assert subs[0].recv_text() == "ok pub room"
    for c in subs[1:-1]:
        assert c.recv_text() == "after unsub"
    for c in subs:
        assert_nothing_pending(c)


def test_unsubscribe_when_not_subscribed_is_a_noop(live, srv):
    c = live.ws(srv)
    assert c.command("/unsub nowhere") == "ok unsub nowhere"
    st = srv.stats()
    assert st["subscriptions"] == 0 and st["topics"] == 0


def test_publish_to_a_topic_without_subscribers(live, srv):
    c = live.ws(srv)
    assert c.command("/pub empty nobody listens") == "ok pub empty"
    assert srv.stats()["skipped"] == 0
    assert_nothing_pending(c)


def test_subscribe_twice_is_a_noop(live, srv):
    a, b = live.ws(srv), live.ws(srv)
    subscribe(a)
    subscribe(a)
    stats_eq(srv, subscriptions=1, topics=1)
    subscribe(b)
    stats_eq(srv, subscriptions=2)
    assert b.command("/pub room once") == "once"
    assert b.recv_text() == "ok pub room"
    assert a.recv_text() == "once"
    assert_nothing_pending(a)  # not twice
    # one unsubscribe removes it
    assert a.command("/unsub room") == "ok unsub room"
    stats_eq(srv, subscriptions=1)


def test_closed_sessions_leave_their_topics(live, srv):
    subs = open_sessions(live, srv)
    for c in subs:
        subscribe(c)
        subscribe(c, "other")
    stats_eq(srv, subscriptions=2 * N)
    # half leave with a close handshake
    for c in subs[:N // 2]:
        c.send_close(1000)
        c.expect_close(1000)
        c.close()
    stats_eq(srv, subscriptions=N, sessions=N // 2)
    # the rest still get publishes, the leavers' slots are gone
    assert subs[-1].command("/pub room still here") == "still here"
    assert subs[-1].recv_text() == "ok pub room"
    for c in subs[N // 2:-1]:
        assert c.recv_text() == "still here"
    # the others vanish without a close frame
    for c in subs[N // 2:]:
        c.abort()
    stats_eq(srv, subscriptions=0, topics=0, sessions=0)


def test_publish_order_is_kept(live, srv):
    subs = open_sessions(live, srv)
    for c in subs:
        subscribe(c)
    stats_eq(srv, subscriptions=N)
    publisher = live.ws(srv)
    count = 200
    publisher.send(b"".join(build_frame(OP_TEXT, f"/pub room {i}") for i in range(count)))
    for i in range(count):
        assert publisher.recv_text() == "ok pub room"
    for c in subs:
        got = [c.recv_text() for _ in range(count)]
        assert got == [str(i) for i in range(count)]
        assert_nothing_pending(c)


def test_publishes_from_two_publishers_keep_each_order(live, srv):
    subs = open_sessions(live, srv)
    for c in subs:
        subscribe(c)
    stats_eq(srv, subscriptions=N)
    p1, p2 = live.ws(srv), live.ws(srv)
    count = 100
    p1.send(b"".join(build_frame(OP_TEXT, f"/pub room a{i}") for i in range(count)))
    p2.send(b"".join(build_frame(OP_TEXT, f"/pub room b{i}") for i in range(count)))
    for p in (p1, p2):
        for _ in range(count):
            assert p.recv_text() == "ok pub room"
    for c in subs:
        got = [c.recv_text() for _ in range(2 * count)]
        assert [g for g in got if g[0] == "a"] == [f"a{i}" for i in range(count)]
        assert [g for g in got if g[0] == "b"] == [f"b{i}" for i in range(count)]


def test_binary_publish(live, srv):
    subs = open_sessions(live, srv)
    for c in subs:
        subscribe(c, "bin")
    stats_eq(srv, subscriptions=N)
    publisher = live.ws(srv)
    assert publisher.command("/pubbin bin 70000") == "ok pub bin"
    for c in subs:
        f = c.recv_message()
        assert f.opcode == OP_BINARY and f.payload == bytes(70000)


def test_topics_are_independent(live, srv):
    a, b, c = live.ws(srv), live.ws(srv), live.ws(srv)
    subscribe(a, "red")
    subscribe(b, "blue")
    subscribe(c, "red")
    subscribe(c, "blue")
    st = stats_eq(srv, subscriptions=4)
    assert 2 <= st["topics"] <= 4
    assert a.command("/pub blue sky") == "ok pub blue"
    assert b.recv_text() == "sky"
    assert c.recv_text() == "sky"
    assert_nothing_pending(a)
    assert b.command("/pub red wine") == "ok pub red"
    assert a.recv_text() == "wine"
    assert c.recv_text() == "wine"
    assert_nothing_pending(b)


def test_topic_names_are_exact_bytes(live, srv):
    a, b = live.ws(srv), live.ws(srv)
    subscribe(a, "Room")
    subscribe(b, "room ")  # trailing space is part of the name
    assert a.command("/pub room x") == "ok pub room"
    assert_nothing_pending(a)
    assert_nothing_pending(b)


def test_many_topics(live, srv):
    clients = open_sessions(live, srv, 4)
    for i, c in enumerate(clients):
        for t in range(100):
            c.send_text(f"/sub t{t}")
        for t in range(100):
            assert c.recv_text() == f"ok sub t{t}"
    st = stats_eq(srv, subscriptions=400)
    assert 100 <= st["topics"] <= 200
    assert clients[0].command("/pub t57 fifty-seven") == "fifty-seven"
    assert clients[0].recv_text() == "ok pub t57"
    for c in clients[1:]:
        assert c.recv_text() == "fifty-seven"
    for c in clients:
        for t in range(0, 100, 2):
            c.send_text(f"/unsub t{t}")
        for t in range(0, 100, 2):
            assert c.recv_text() == f"ok unsub t{t}"
    st = stats_eq(srv, subscriptions=200)
    assert 50 <= st["topics"] <= 100
    for c in clients:
        c.abort()
    stats_eq(srv, subscriptions=0, topics=0, sessions=0)


def test_subscriber_closing_while_publishes_flow(live, srv):
    subs = open_sessions(live, srv)
    for c in subs:
        subscribe(c)
    stats_eq(srv, subscriptions=N)
    publisher = live.ws(srv)
    publisher.send(b"".join(build_frame(OP_TEXT, f"/pubbin room {1000 + i}") for i in range(300)))
    for c in subs[::2]:
        c.abort()
    for _ in range(300):
        assert publisher.recv_text() == "ok pub room"
    for c in subs[1::2]:
        for i in range(300):
            f = c.recv_message()
            assert f.opcode == OP_BINARY and len(f.payload) == 1000 + i
    stats_eq(srv, subscriptions=N // 2, sessions=N // 2 + 1)


def test_pubbin_size_is_delimited_by_the_message(live):
    """Regression (test server): /pubbin parsed its size with strtoul() on the message
    bytes, which are not NUL-terminated, so digits left behind in the loop's receive
    buffer became part of the size."""
    srv = live.server("--loops", 1)
    c = live.ws(srv)
    subscribe(c, "t")
    # the payload of this echo lands (unmasked in place) at the same offset of the loop's
    # receive buffer as the next message, and is longer: its tail "00" stays behind it
    c.send_text("x" * 11 + "00")
    assert c.recv_text() == "x" * 11 + "00"
    c.send_text("/pubbin t 1")  # 11 bytes: followed in the buffer by the stale "00"
    f = c.recv_message()
    assert f.opcode == OP_BINARY
    assert len(f.payload) == 1, f"published {len(f.payload)} bytes instead of 1"


@pytest.mark.parametrize("length", [600, 65535])
def test_long_topics(live, length):
    """Regression (test server): the /sub, /unsub and /pub replies were built in a 512-byte
    stack buffer and sent with snprintf's return value as their length, so a long topic
    sent stack memory (an overflowing read under ASan). Topics may be 65535 bytes when the
    server allows them (max_topic_len)."""
    srv = live.server("--loops", 2, "--max-topic-len", 65535)
    a, b = live.ws(srv), live.ws(srv)
    topic = "T" * length
    subscribe(a, topic)
    stats_eq(srv, subscriptions=1)
    assert b.command(f"/pub {topic} long") == f"ok pub {topic}"
    assert a.recv_text() == "long"
    assert a.command(f"/unsub {topic}") == f"ok unsub {topic}"
    stats_eq(srv, subscriptions=0, topics=0)


def test_topic_over_65535_bytes_is_refused(live):
    """clive_subscribe takes 1 to 65535 bytes at most: a longer topic is not subscribed."""
    srv = live.server("--loops", 2, "--max-topic-len", 65535)
    a = live.ws(srv)
    topic = "T" * 65536
    assert a.command(f"/sub {topic}") == "err sub invalid argument"
    assert srv.stats()["subscriptions"] == 0

