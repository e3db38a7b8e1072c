"""Per-topic policies (issue 6): throttle with a trailing edge, and "latest value wins"
coalescing for slow readers."""
from wsraw import OP_CLOSE


def test_throttle_sends_the_first_and_the_last_of_a_burst(live):
    srv = live.server("--loops", 1, "--throttle", "tick:300")
    sub, pub = live.ws(srv), live.ws(srv)
    assert sub.command("/sub tick:a") == "ok sub tick:a"
    for i in range(100):  # a burst well within one interval
        pub.send_text(f"/pub tick:a v{i}")
    for i in range(100):
        assert pub.recv_text() == "ok pub tick:a"
    # the first goes out at once; the rest are held back and only the newest is sent when
    # the interval ends (the trailing edge), so the final value always arrives
    got = [sub.recv_text()]
    while got[-1] != "v99":
        got.append(sub.recv_text(timeout=10))
    assert got[0] == "v0"
    assert len(got) <= 3, got
    sub.close()
    pub.close()


def test_unthrottled_topics_are_untouched(live):
    srv = live.server("--loops", 1, "--throttle", "tick:300")
    sub, pub = live.ws(srv), live.ws(srv)
    assert sub.command("/sub other") == "ok sub other"
    for i in range(50):
        pub.send_text(f"/pub other v{i}")
    assert [sub.recv_text() for _ in range(50)] == [f"v{i}" for i in range(50)]
    sub.close()
    pub.close()


def test_latest_value_wins_keeps_a_slow_reader_open_and_current(live):
    """A reader that stops reading would overflow a 64-frame queue within a few thousand
    1 KiB publishes; on a latest-only topic each publish replaces the one still unsent, so
    its queue stays short and, once it reads again, the last thing it gets is the newest.
    (Without the policy the same run overflows the queue: checked when this was written.)"""
    srv = live.server("--loops", 1, "--queue-size", 64, "--latest", "dash:", "--close-ms", 10000)
    slow, pub = live.ws(srv), live.ws(srv)
    assert slow.command("/sub dash:cpu") == "ok sub dash:cpu"
    payload = "x" * 1000
    for i in range(5000):
        pub.send_text(f"/pub dash:cpu {i}:{payload}")
        if i % 500 == 499:  # keep the publisher's own replies from piling up
            for _ in range(500):
                pub.recv_text()
    for _ in range(5000 % 500):
        pub.recv_text()
    st = srv.stats()
    assert st["overflows"] == 0, st
    # now read: the values arrive in order and end with the newest
    last = None
    while last != 4999:
        m = slow.recv_message(timeout=10)
        assert m.opcode != OP_CLOSE, m
        value = int(m.payload.split(b":", 1)[0])
        assert last is None or value > last
        last = value
    slow.close()
    pub.close()
