"""The counters of GET /stats (clive_server_stats) follow what happens on the wire."""

from wsraw import OP_BINARY, OP_TEXT, build_frame, wait_for


def test_session_and_connection_counts(live):
    srv = live.server("--loops", 2, "--handshake-ms", 2000)
    st = srv.stats()
    assert st["connections"] == 1 and st["sessions"] == 0
    clients = [live.ws(srv) for _ in range(5)]
    pending = live.raw(srv)
    pending.request("/wait")  # a connection, not a session
    st = wait_for(lambda: (s := srv.stats())["connections"] == 7 and s, what="7 connections")
    assert st["sessions"] == 5 and st["opened"] == 5 and st["closed"] == 0
    for c in clients[:2]:
        c.send_close(1000)
        c.expect_close(1000)
        c.close()
    st = wait_for(lambda: (s := srv.stats())["connections"] == 5 and s, what="5 connections")
    assert st["sessions"] == 3 and st["closed"] == 2


def test_messages_in_counts_messages_not_frames(live):
    srv = live.server()
    c = live.ws(srv)
    c.send(build_frame(OP_TEXT, "one")
           + build_frame(OP_BINARY, b"t", fin=False) + build_frame(0, b"w", fin=False) + build_frame(0, b"o")
           + build_frame(0x9, b"ping"))
    assert c.recv_text() == "one"
    assert c.recv_message().payload == b"two"
    assert c.recv_frame().opcode == 0xA
    assert srv.stats()["messages_in"] == 2


def test_frames_out_counts_written_frames(live):
    """One loop, so that each /stats request is handled after the loop counted what it
    wrote before (with two, the other loop may read the counter between a sendmsg and
    its count: the bytes can reach us first)."""
    srv = live.server("--loops", 1)
    before = srv.stats()["frames_out"]  # includes earlier /stats responses
    c = live.ws(srv)  # the 101 response is one
    c.send_text("/flood 10 100")
    for _ in range(10):
        c.recv_message()
    st = srv.stats()
    # the 101, ten frames, and the previous /stats response
    assert st["frames_out"] - before == 12
