"""What one well-formed but hostile client can make the server hold or do (issue 11): topic
limits, a handler that closes during a reassembled message, the per-turn message budget,
the server-wide queue budget, the per-address connection cap, and the port a second
process would share. Plus the any-thread inspection and broadcast an app defends itself
with."""

import threading
import time

import pytest

from wsraw import OP_CONT, OP_TEXT, RawClient, build_frame, new_key, wait_for

MB = 1 << 20


def frames(*texts: str) -> bytes:
    return b"".join(build_frame(OP_TEXT, t.encode()) for t in texts)


# --- 0. the bytes of a reassembled message outlive a close inside its handler -------------


def test_handler_that_closes_its_session_can_still_read_a_fragmented_message(live):
    """Regression: on_message for a message reassembled from fragments, whose handler closed
    its own session and then read its bytes, read freed memory (leave_open freed the
    reassembly buffer under the callback). The ASan run of this test reports it; every run
    checks the close and a clean exit."""
    srv = live.server()
    c = live.ws(srv)
    body = "/closeread " + "x" * 5000
    c.send(build_frame(OP_TEXT, body[:10].encode(), fin=False)
           + build_frame(OP_CONT, body[10:3000].encode(), fin=False)
           + build_frame(OP_CONT, body[3000:].encode()))
    c.expect_close(1000)


# --- 1. limits --------------------------------------------------------------------------------


def test_topics_per_session_are_limited(live):
    srv = live.server("--max-topics-per-session", 3)
    c = live.ws(srv)
    for t in ("a", "b", "c"):
        assert c.command(f"/sub {t}") == f"ok sub {t}"
    assert c.command("/sub d") == "err sub limit reached"
    assert c.command("/sub c") == "ok sub c"  # one it holds: no limit applies
    assert srv.stats()["refused_subscribes"] == 1
    assert srv.stats()["subscriptions"] == 3
    assert c.command("/unsub a") == "ok unsub a"
    assert c.command("/sub d") == "ok sub d"
    other = live.ws(srv)  # the limit is per session
    for t in ("e", "f", "g"):
        assert other.command(f"/sub {t}") == f"ok sub {t}"


def test_topics_per_server_are_limited(live):
    srv = live.server("--loops", 1, "--max-topics", 2)
    a, b = live.ws(srv), live.ws(srv)
    assert a.command("/sub one") == "ok sub one"
    assert b.command("/sub two") == "ok sub two"
    assert b.command("/sub three") == "err sub limit reached"  # a third topic
    assert a.command("/sub two") == "ok sub two"  # an existing topic is no new one
    assert a.command("/unsub one") == "ok unsub one"
    assert b.command("/sub three") == "ok sub three"


def test_topic_length_is_limited_to_255_bytes_by_default(live):
    srv = live.server()
    c = live.ws(srv)
    ok = "t" * 255
    assert c.command(f"/sub {ok}") == f"ok sub {ok}"
    assert c.command("/sub " + "t" * 256) == "err sub invalid argument"
    assert srv.stats()["subscriptions"] == 1


def test_a_session_holding_thousands_of_topics_joins_and_leaves_them_all(live):
    """Joins and leaves go through a (session, topic) table, not the session's list: a
    pipelined burst of 5,000 of each comes out with every answer and nothing left."""
    srv = live.server("--loops", 1, "--max-topics-per-session", 10000)
    c = live.ws(srv)
    n = 5000
    c.send(frames(*(f"/sub room:{k}" for k in range(n))))
    for k in range(n):
        assert c.recv_text() == f"ok sub room:{k}"
    assert srv.stats()["subscriptions"] == n
    c.send(frames(*(f"/unsub room:{k}" for k in range(n - 1, -1, -1))))
    for k in range(n - 1, -1, -1):
        assert c.recv_text() == f"ok unsub room:{k}"
    st = srv.stats()
    assert st["subscriptions"] == 0 and st["topics"] == 0


# --- 2. work per turn ------------------------------------------------------------------------


def test_a_pipelined_burst_is_answered_whole_and_in_order(live):
    """Messages beyond a turn's budget wait in the session's backlog, unread input behind
    them: none is lost or reordered, including ones sent right behind the upgrade request."""
    srv = live.server("--loops", 1)
    c = live.raw(srv)
    n = 20000
    burst = frames(*(f"m{k}" for k in range(n)))
    c.upgrade("/")
    c.send(burst)
    for k in range(n):
        assert c.recv_text() == f"m{k}"


def test_pipelined_frames_behind_the_request_head_beyond_the_budget(live):
    srv = live.server("--loops", 1)
    c = live.raw(srv)
    key = new_key()
    head = (f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    c.send(head + frames(*(f"p{k}" for k in range(300))))
    assert c.read_response().status == 101
    for k in range(300):
        assert c.recv_text() == f"p{k}"


def test_a_flooding_client_does_not_hold_the_loop_until_its_flood_is_done(live):
    """One session pipelines 1,000,000 messages; a second session on the same loop sends once
    the server has answered the flood's first message, and is served before the flood's
    end (the server numbers the messages it handles: /seq). Without the per-turn budget,
    the flood's first reply went out only after a whole read's worth of it (a MiB)."""
    srv = live.server("--loops", 1)
    flooder, probe = live.ws(srv), live.ws(srv)
    seq = build_frame(OP_TEXT, b"/seq")
    burst = seq + build_frame(OP_TEXT, b"/nop") * 1000000 + seq
    sender = threading.Thread(target=flooder.send, args=(burst,))
    sender.start()
    try:
        first = int(flooder.recv_text().split()[1])
        probe_seq = int(probe.command("/seq").split()[1])
        last = int(flooder.recv_text(timeout=30).split()[1])
    finally:
        sender.join()
    assert first < probe_seq < last, (first, probe_seq, last)


# --- 3. the server's queue budget and the per-address cap -----------------------------------


def test_past_the_queue_budget_the_largest_queue_is_closed_first(live):
    """Two clients that never read pin 8 MB and 16 MB of frames; the budget is 12 MB. The
    larger is closed with 4008, the smaller keeps its session and reads every frame."""
    srv = live.server("--loops", 1, "--max-queued-total", 12 * MB, "--queue-bytes", 64 * MB)
    small, large = RawClient(srv.port, rcvbuf=4096), RawClient(srv.port, rcvbuf=4096)
    for c in (small, large):
        live.defer(c.close)
        c.upgrade("/")
    small.send_text("/flood 128 65536")
    wait_for(lambda: srv.stats()["queued_bytes"] >= 2 * MB, what="the small queue to fill")
    large.send_text("/flood 256 65536")
    wait_for(lambda: srv.stats()["budget_closes"] == 1, what="a budget close")
    large.expect_close(4008, skip_data=True, timeout=30)
    for _ in range(128):
        f = small.recv_message(timeout=30)
        assert len(f.payload) == 65536
    assert small.command("/id").isdigit()
    assert srv.stats()["budget_closes"] == 1


def test_connections_per_address_are_capped_with_429(live):
    srv = live.server("--max-per-ip", 2)
    a, b = live.ws(srv), live.ws(srv)
    c = live.raw(srv)
    c.request()
    resp = c.read_response()
    assert resp.status == 429, resp
    c.expect_eof()
    a.send_close(1000)
    a.expect_close(1000)
    wait_for(lambda: live.upgrade_or_status(srv) == 101, what="a slot for a new connection")
    assert b.command("/id").isdigit()


# --- ports ----------------------------------------------------------------------------------


def test_a_second_server_on_a_port_in_use_fails_naming_it(live):
    first = live.server()
    with pytest.raises(RuntimeError) as e:
        live.server_on(first.port)
    assert f"address 127.0.0.1:{first.port} already in use" in str(e.value)


def test_servers_that_share_a_port_on_purpose_both_start(live):
    first = live.server("--share-port")
    second = live.server_on(first.port, "--share-port")
    assert second.port == first.port


def test_an_option_out_of_range_stops_the_start_and_names_the_option(live):
    with pytest.raises(RuntimeError) as e:
        live.server("--max-topic-len", 65536)
    assert "max_topic_len must be 1...65535, got 65536" in str(e.value)


# --- 6. what an app defends itself with -------------------------------------------------------


def test_inspect_from_another_thread_reports_queue_and_topics(live):
    srv = live.server("--loops", 2)
    c = live.ws(srv)
    assert c.command("/sub alpha") == "ok sub alpha"
    assert c.command("/sub beta") == "ok sub beta"
    reply = c.command("/inspect")
    fields = dict(kv.split("=", 1) for kv in reply.split()[1:])
    assert fields["open"] == "1"
    assert sorted(fields["topics"].split(",")) == ["alpha", "beta"]
    assert int(fields["frames"]) >= 0 and int(fields["bytes"]) >= 0


def test_broadcast_reaches_every_open_session_on_every_loop(live):
    srv = live.server("--loops", 2)
    clients = [live.ws(srv) for _ in range(6)]
    clients[0].send_text("/broadcast to all")
    for c in clients:
        assert c.recv_text() == "to all"


# --- a peer that never reads (issue 12, 5) -------------------------------------------------


def server_sockets(port: int) -> list[str]:
    """The TCP states (as /proc/net/tcp spells them, e.g. 04 for FIN-WAIT-1) of the
    connections whose local port is port, listeners and TIME-WAIT (which holds no data:
    the /stats requests leave those) left out."""
    states = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if int(local.split(":")[1], 16) == port and state not in ("0A", "06"):
                states.append(state)
    return states


def test_a_peer_that_never_reads_is_cut_with_a_reset_at_the_close_timeout(live):
    """Regression: a slow reader closed with 4008 kept its socket in FIN-WAIT-1 with the
    unsent bytes after the close timeout, for as long as the peer kept its window shut; the
    peer never saw the end. Now the connection is aborted: the server's socket is gone and
    the peer sees the end."""
    srv = live.server("--loops", 1, "--close-ms", 300, "--queue-bytes", 1 << 20)
    c = RawClient(srv.port, rcvbuf=4096)
    live.defer(c.close)
    c.upgrade("/")
    c.send_text("/flood 64 65536")  # 4 MiB, more than its queue: 4008
    wait_for(lambda: srv.stats()["overflows"] == 1, what="the overflow")
    wait_for(lambda: server_sockets(srv.port) == [], timeout=5,
             what="the server's socket to be gone (no FIN-WAIT-1)")
    ended = False
    try:
        while c._fill(time.monotonic() + 5):
            c.buf.clear()
        ended = True  # EOF
    except (ConnectionResetError, BrokenPipeError):
        ended = True
    assert ended


def test_a_client_that_leaves_while_its_upgrade_is_decided_is_noticed_at_once(live):
    """Regression: while the app decided an upgrade (on_request, /wait never decides), the
    core polled the connection for nothing, so a client that left was noticed only at the
    handshake timeout, and an app's pending authorisation ran on until then. A hangup is
    watched for now: the connection is gone long before the 60 s timeout."""
    srv = live.server("--handshake-ms", 60000)
    c = live.raw(srv)
    c.request("/wait")
    wait_for(lambda: srv.stats()["connections"] == 2, what="the pending connection")
    c.close()
    wait_for(lambda: srv.stats()["connections"] == 1, timeout=10, what="the hangup to be noticed")
