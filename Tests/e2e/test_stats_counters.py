"""The counters issue 15 added to clive_stats (closes by kind, refusals by status, bytes,
publishes and deliveries, policy drops, fanout timing) follow what happens on the wire."""
import json
import socket

from wsraw import OP_BINARY, OP_CLOSE, build_frame, wait_for

# clive_close_kind
BY_PEER, BY_SERVER, PROTOCOL, ABNORMAL = 1, 2, 3, 7


def raw_stats(port: int) -> tuple[dict, int]:
    """/stats and the number of bytes its response took on the wire."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET /stats HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1]), len(data)


def test_closes_are_counted_by_kind(live):
    srv = live.server("--loops", 2)
    peer, server, protocol, gone = (live.ws(srv) for _ in range(4))
    peer.send_close(1000)
    peer.expect_close(1000)
    server.send_text("/close 4000 bye")
    assert server.recv_frame().opcode == OP_CLOSE
    protocol.send(build_frame(OP_BINARY, b"x", mask=False))  # clients must mask
    assert protocol.recv_frame().opcode == OP_CLOSE
    gone.abort()
    st = wait_for(lambda: (s := srv.stats())["closed"] == 4 and s, what="4 closes")
    closes = st["closes"]
    assert closes[BY_PEER] == 1 and closes[BY_SERVER] == 1 and closes[PROTOCOL] == 1
    assert closes[ABNORMAL] == 1
    assert sum(closes) == 4, closes


def test_refused_upgrades_are_counted_by_status_and_plain_requests_are_not(live):
    srv = live.server("--origin", "https://good.example")
    assert live.upgrade_or_status(srv) == 101  # no Origin: not a browser, passes
    c = live.raw(srv)
    c.request("/reject401")  # the app refuses
    assert c.read_response().status == 401
    c = live.raw(srv)
    c.request(omit=("Sec-WebSocket-Key",))
    assert c.read_response().status == 400
    c = live.raw(srv)
    c.request(extra=[("Origin", "https://evil.example")])
    assert c.read_response().status == 403
    srv.stats()
    srv.stats()  # plain requests (200) are answers, not refusals
    rejected = srv.stats()["rejected"]
    assert rejected["401"] == 1 and rejected["400"] == 1 and rejected["403"] == 1
    assert sum(rejected.values()) == 3, rejected


def test_a_publish_to_three_subscribers_is_one_publish_and_three_deliveries(live):
    srv = live.server("--loops", 2)
    subs = [live.ws(srv) for _ in range(3)]
    for s in subs:
        assert s.command("/sub news") == "ok sub news"
    pub = live.ws(srv)
    before = srv.stats()
    assert pub.command("/pub news hello") == "ok pub news"
    for s in subs:
        assert s.recv_text() == "hello"
    st = srv.stats()
    assert st["published"] - before["published"] == 1
    assert st["deliveries"] - before["deliveries"] == 3
    # each loop holding a subscriber timed its fanout once; the histogram adds up
    fanouts = st["fanouts"] - before["fanouts"]
    assert 1 <= fanouts <= 2
    assert st["fanout_ns"] > before["fanout_ns"]
    assert sum(st["fanout_hist"]) == st["fanouts"]


def test_bytes_out_counts_every_byte_written(live):
    """One loop, so that each /stats is handled after the loop counted what it wrote
    before (see test_frames_out_counts_written_frames)."""
    srv = live.server("--loops", 1)
    before, stats_bytes = raw_stats(srv.port)
    c = live.raw(srv)
    c.request()
    resp = c.read_response()
    assert resp.status == 101
    upgrade_bytes = len(f"HTTP/1.1 101 {resp.reason}\r\n".encode()
                        + b"".join(f"{k}: {v}\r\n".encode() for k, v in resp.headers) + b"\r\n")
    c.send_text("/flood 10 100")
    for _ in range(10):
        assert len(c.recv_message().payload) == 100
    after, _ = raw_stats(srv.port)
    frames = 10 * (2 + 100)  # a 2-byte header each
    # the previous /stats response, the 101, and the ten frames
    assert after["bytes_out"] - before["bytes_out"] == stats_bytes + upgrade_bytes + frames


def test_latest_only_replacements_are_counted_as_coalesced(live):
    srv = live.server("--loops", 1, "--latest", "dash:", "--queue-size", 64)
    slow, pub = live.ws(srv), live.ws(srv)
    assert slow.command("/sub dash:cpu") == "ok sub dash:cpu"
    payload = "x" * 1000
    for i in range(2000):
        pub.send_text(f"/pub dash:cpu {i}:{payload}")
        if i % 500 == 499:
            for _ in range(500):
                pub.recv_text()
    st = srv.stats()
    # the reader is not reading: most publishes replaced the one still waiting for it
    assert st["coalesced"] > 0 and st["overflows"] == 0, st
    assert st["deliveries"] == 2000


def test_throttled_publishes_superseded_before_their_interval_ends_are_counted(live):
    srv = live.server("--loops", 1, "--throttle", "tick:60000")
    sub, pub = live.ws(srv), live.ws(srv)
    assert sub.command("/sub tick:a") == "ok sub tick:a"
    for i in range(10):
        assert pub.command(f"/pub tick:a v{i}") == "ok pub tick:a"
    assert sub.recv_text() == "v0"  # the first goes out at once
    # v1 to v9 were held back in turn, each replacing the one before: eight superseded
    st = srv.stats()
    assert st["throttled"] == 8, st
    assert st["deliveries"] == 1
