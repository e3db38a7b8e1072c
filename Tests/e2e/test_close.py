"""Server-initiated closes, graceful shutdown, and connections that vanish. The fixture's
exit-status check (every session got exactly one on_close) is the main assertion of the
abnormal cases."""

import asyncio
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from wsraw import OP_CLOSE, OP_TEXT, RawClient, build_frame, close_payload, wait_for


def only_stats_connection(srv):
    return wait_for(lambda: (s := srv.stats())["connections"] == 1 and s, what="no connection but /stats")


# --- server-initiated close ------------------------------------------------------------


def test_server_close_4000_bye(live):
    srv = live.server()
    c = live.ws(srv)
    c.send_text("/close 4000 bye")
    c.expect_close(4000, "bye")  # then TCP closed (EOF)
    c.send_close(4000, "bye")  # our reply
    c.close()  # and our FIN: the server lingers until it (or until --close-ms)
    st = only_stats_connection(srv)
    assert st["sessions"] == 0 and st["closed"] == st["opened"] == 1


def test_server_close_without_reason(live):
    srv = live.server()
    c = live.ws(srv)
    c.send_text("/close 1000")
    c.expect_close(1000, "")


def test_server_close_after_queued_messages(live):
    """The close frame goes behind what is already queued."""
    srv = live.server()
    c = live.ws(srv)
    c.send(build_frame(OP_TEXT, "one") + build_frame(OP_TEXT, "two") + build_frame(OP_TEXT, "/close 3000 done"))
    assert c.recv_text() == "one"
    assert c.recv_text() == "two"
    c.expect_close(3000, "done")


@pytest.mark.parametrize("cmd", ["/close 1005 x", "/close 1006 x", "/close 999 x", "/close 2000 x", "/close 5000 x",
                                 "/close 4000 " + "r" * 124])
def test_server_close_with_invalid_arguments_is_refused(live, cmd):
    """clive_session_close rejects codes that may not appear on the wire and reasons over
    123 bytes (CLIVE_EINVAL): the session stays open."""
    srv = live.server()
    c = live.ws(srv)
    c.send_text(cmd)
    assert c.command("/id").isdigit()


def test_messages_after_server_close_are_dropped(live):
    srv = live.server()
    c = live.ws(srv)
    c.send(build_frame(OP_TEXT, "/close 4000 bye") + build_frame(OP_TEXT, "late"))
    c.expect_close(4000, "bye")
    assert srv.stats()["messages_in"] == 1


def test_server_close_seen_by_websockets(live):
    srv = live.server()

    async def go():
        ws = await connect(srv.url + "/", ping_interval=None)
        await ws.send("/close 4000 bye")
        with pytest.raises(ConnectionClosedError) as ei:
            await ws.recv()
        assert ei.value.rcvd.code == 4000 and ei.value.rcvd.reason == "bye"
        await ws.wait_closed()

    asyncio.run(asyncio.wait_for(go(), 30))


# --- graceful shutdown -----------------------------------------------------------------


def test_graceful_shutdown_closes_every_session_with_1001(live):
    srv = live.server("--loops", 2)
    clients = [live.ws(srv) for _ in range(20)]
    for i, c in enumerate(clients):
        assert c.command(f"hello {i}") == f"hello {i}"
    wait_for(lambda: srv.stats()["sessions"] == 20, what="20 sessions")
    srv.terminate()
    for c in clients:
        f = c.recv_frame()
        assert f.opcode == OP_CLOSE and f.code == 1001, f
        c.send_close(1001)  # the close reply, then our FIN: the server need not wait
        c.expect_eof()
        c.close()
    assert srv.wait() == 0


def test_graceful_shutdown_with_silent_peers(live):
    """Peers that never answer the close: the server still exits, after its close
    timeout, with every on_close called once."""
    srv = live.server("--loops", 2, "--close-ms", 300)
    clients = [live.ws(srv) for _ in range(10)]
    wait_for(lambda: srv.stats()["sessions"] == 10, what="10 sessions")
    srv.terminate()
    for c in clients:
        c.expect_close(1001)  # close frame, then EOF; we never reply
    assert srv.wait() == 0


def test_graceful_shutdown_with_pending_handshakes_and_subscriptions(live):
    srv = live.server("--loops", 2)
    subs = [live.ws(srv) for _ in range(6)]
    for c in subs:
        assert c.command("/sub room") == "ok sub room"
    half = live.raw(srv)
    half.send(b"GET / HTTP/1.1\r\n")  # never completes its request
    undecided = live.raw(srv)
    undecided.request("/wait")  # never accepted
    wait_for(lambda: srv.stats()["connections"] == 9, what="9 connections")
    srv.terminate()
    for c in subs:
        c.expect_close(1001)
        c.send_close(1001)
        c.close()
    half.expect_eof()
    undecided.expect_eof()
    assert srv.wait() == 0


def test_shutdown_while_a_flood_is_in_flight(live):
    srv = live.server("--close-ms", 300)
    c = live.raw(srv, rcvbuf=4096)
    c.upgrade()
    c.send_text("/flood 1000 10000")  # far more than the socket buffers hold
    wait_for(lambda: srv.stats()["queued_frames"] > 0, what="a queue backlog")
    srv.terminate()
    # the close frame waits behind the queued frames; we read none of them: the close
    # timeout must still end the session and the process
    assert srv.wait() == 0


def test_websockets_client_sees_1001_on_shutdown(live):
    srv = live.server()

    async def go():
        ws = await connect(srv.url + "/", ping_interval=None)
        await ws.send("ping")
        assert await ws.recv() == "ping"
        srv.terminate()
        await ws.wait_closed()
        assert ws.close_code == 1001

    asyncio.run(asyncio.wait_for(go(), 30))
    assert srv.wait() == 0


# --- abnormal ends ---------------------------------------------------------------------


def test_client_drops_tcp_without_close(live):
    srv = live.server()
    c = RawClient(srv.port)
    c.upgrade()
    assert c.command("x") == "x"
    c.close()  # FIN, no close frame
    st = only_stats_connection(srv)
    assert st["sessions"] == 0 and st["opened"] == st["closed"] == 1


def test_client_resets_tcp(live):
    srv = live.server()
    c = RawClient(srv.port)
    c.upgrade()
    assert c.command("/sub room") == "ok sub room"
    c.abort()  # RST
    st = only_stats_connection(srv)
    assert st["sessions"] == 0 and st["subscriptions"] == 0 and st["topics"] == 0


@pytest.mark.parametrize("what", ["half a header", "half a payload", "half a fragmented message",
                                  "half a close frame", "unread replies"])
def test_client_drops_mid_stream(live, what):
    srv = live.server()
    c = RawClient(srv.port)
    c.upgrade()
    if what == "half a header":
        c.send(build_frame(OP_TEXT, b"x" * 70000)[:5])
    elif what == "half a payload":
        c.send(build_frame(OP_TEXT, b"x" * 70000)[:30000])
    elif what == "half a fragmented message":
        c.send(build_frame(OP_TEXT, "first part ", fin=False) + build_frame(0, b"y" * 5000, fin=False))
    elif what == "half a close frame":
        c.send(build_frame(OP_CLOSE, close_payload(1000, "bye"))[:4])
    else:
        c.send(b"".join(build_frame(OP_TEXT, f"msg {i}") for i in range(500)))
    c.close()
    st = only_stats_connection(srv)
    assert st["sessions"] == 0 and st["opened"] == st["closed"] == 1


def test_many_clients_vanish_at_once(live):
    srv = live.server("--loops", 2)
    clients = []
    for i in range(40):
        c = RawClient(srv.port)
        c.upgrade()
        c.send_text(f"/sub t{i % 3}")
        clients.append(c)
    for c in clients:
        assert c.recv_text().startswith("ok sub")
    for i, c in enumerate(clients):
        c.abort() if i % 2 else c.close()
    st = only_stats_connection(srv)
    assert st["sessions"] == 0 and st["subscriptions"] == 0 and st["topics"] == 0
    assert st["opened"] == st["closed"] == 40


def test_client_drops_after_sending_close(live):
    """Close frame sent, then the socket closed before reading the server's reply."""
    srv = live.server()
    c = RawClient(srv.port)
    c.upgrade()
    c.send_close(1000, "bye")
    c.sock.shutdown(socket.SHUT_WR)
    c.close()
    st = only_stats_connection(srv)
    assert st["sessions"] == 0 and st["closed"] == 1


def test_drop_during_handshake_decision(live):
    """While the upgrade is undecided the server reads nothing, so it sees the FIN only
    when the handshake deadline ends the connection."""
    srv = live.server("--handshake-ms", 300)
    c = RawClient(srv.port)
    c.request("/wait")
    wait_for(lambda: srv.stats()["connections"] == 2, what="the /wait connection")
    c.close()
    only_stats_connection(srv)
