"""Inbound rate limiting (issue 6): a token bucket per session; messages over the limit are
dropped and counted, and a session that stays over it past the grace period is closed with
1008."""
import socket
import time

from wsraw import OP_CLOSE, wait_for


def test_messages_over_the_limit_are_dropped_then_the_session_is_closed(live):
    srv = live.server("--rate-limit", 20, "--rate-burst", 5, "--rate-grace-ms", 300)
    c = live.raw(srv)
    c.upgrade()
    # a burst of 50 right away: the bucket holds 5, so most are dropped, none closes yet
    for i in range(50):
        c.send_frame(0x1, f"m{i}".encode())
    wait_for(lambda: srv.stats()["rate_limited"] >= 40, what="the drops to be counted")
    # keep sending faster than 20/s until the grace runs out: the server closes with 1008
    # (the echoes of what passed come first)
    deadline = time.monotonic() + 10
    while True:
        assert time.monotonic() < deadline, "no close frame within 10 s of flooding"
        c.send_frame(0x1, b"more")
        try:
            f = c.recv_frame(timeout=0.01)
        except (socket.timeout, TimeoutError):
            continue
        if f.opcode == OP_CLOSE:
            break
    assert f.code == 1008
    stats = srv.stats()
    assert stats["messages_in"] < stats["rate_limited"], stats


def test_a_client_under_the_limit_is_never_limited(live):
    srv = live.server("--rate-limit", 1000, "--rate-burst", 100)
    c = live.ws(srv)
    for i in range(100):  # a burst within the bucket, each echoed
        c.send_text(f"n{i}")
    for i in range(100):
        assert c.recv_text() == f"n{i}"
    assert srv.stats()["rate_limited"] == 0
    c.close()
