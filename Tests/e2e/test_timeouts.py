"""Handshake timeout, keepalive pings and the idle timeout. The timeouts are short; every
wait below is for an event (EOF, a frame) with a generous deadline."""

import asyncio
import select

from websockets.asyncio.client import connect

from wsraw import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, build_frame, wait_for

HANDSHAKE = ("--handshake-ms", 300)
KEEPALIVE = ("--ping-ms", 200, "--idle-ms", 600)


def test_handshake_timeout_half_request(live):
    srv = live.server(*HANDSHAKE)
    c = live.raw(srv)
    c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
    c.expect_abort(timeout=10)  # closed without a response


def test_handshake_timeout_silent_connection(live):
    srv = live.server(*HANDSHAKE)
    c = live.raw(srv)
    c.expect_abort(timeout=10)


def test_handshake_timeout_trickling_request(live):
    """The deadline covers the whole request, not the gap between bytes: a client that
    keeps sending a byte at a time but never finishes is cut off."""
    srv = live.server(*HANDSHAKE)
    c = live.raw(srv)
    c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")

    closed = False
    for _ in range(2000):  # each round waits (up to 50 ms) for the server to close us
        r, _, _ = select.select([c.sock], [], [], 0.05)
        if r:
            try:
                closed = c.sock.recv(1) == b""
            except ConnectionResetError:  # the deadline aborts the connection
                closed = True
            break
        try:
            c.send(b"a")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
    assert closed


def test_handshake_timeout_undecided_upgrade(live):
    """/wait: on_request never accepts nor responds; the handshake deadline ends it."""
    srv = live.server(*HANDSHAKE)
    c = live.raw(srv)
    c.request("/wait")
    c.expect_abort(timeout=10)
    wait_for(lambda: srv.stats()["connections"] == 1, what="only the stats connection left")


def test_handshake_timeout_does_not_touch_open_sessions(live):
    srv = live.server(*HANDSHAKE)
    c = live.ws(srv)
    slow = live.raw(srv)
    slow.expect_abort(timeout=10)  # a full handshake timeout has passed
    c.send_text("alive")
    assert c.recv_text() == "alive"


def test_handshake_timeout_many_at_once(live):
    srv = live.server(*HANDSHAKE)
    clients = [live.raw(srv) for _ in range(20)]
    for i, c in enumerate(clients):
        if i % 2:
            c.send(b"GET / HTTP/1.1\r\n")
    for c in clients:
        c.expect_abort(timeout=10)
    st = wait_for(lambda: (s := srv.stats())["connections"] == 1 and s, what="all closed")
    assert st["sessions"] == 0


def test_idle_client_gets_ping_then_1001(live):
    srv = live.server(*KEEPALIVE)
    c = live.ws(srv)
    f = c.recv_frame(timeout=10)
    assert f.opcode == OP_PING and f.fin and not f.masked
    f = c.recv_frame(timeout=10)
    assert f.opcode == OP_CLOSE, f
    assert f.code == 1001
    c.expect_eof(timeout=10)


def test_client_that_answers_pings_stays(live):
    srv = live.server(*KEEPALIVE)
    c = live.ws(srv)
    pings = 0
    while pings < 4:  # four ping intervals: well past the 600 ms idle timeout
        f = c.recv_frame(timeout=10)
        assert f.opcode == OP_PING, f
        pings += 1
        c.send_frame(OP_PONG, f.payload)
    c.send_text("still open")
    while True:
        f = c.recv_frame(timeout=10)
        if f.opcode == OP_PING:
            c.send_frame(OP_PONG, f.payload)
            continue
        assert f.opcode == OP_TEXT and f.text == "still open"
        break


def test_any_traffic_counts_as_life(live):
    """Data messages (not only pongs) reset the idle timer."""
    srv = live.server(*KEEPALIVE)
    c = live.ws(srv)
    pings = 0
    while pings < 4:
        f = c.recv_frame(timeout=10)
        if f.opcode == OP_PING:
            pings += 1
            c.send_text(f"tick {pings}")  # answer with data, never with a pong
        else:
            assert f.opcode == OP_TEXT and f.text == f"tick {pings}", f
    c.send_text("done")
    while (f := c.recv_frame(timeout=10)).opcode == OP_PING:
        c.send_text("tick")
        assert c.recv_text() == "tick"
    assert f.opcode == OP_TEXT


def test_websockets_client_stays_connected_across_pings(live):
    """The websockets client answers pings by itself. A raw client on the same server,
    which also answers, is the clock: once it has seen 4 pings (past the idle timeout),
    the websockets client must still be connected and echoing."""
    srv = live.server(*KEEPALIVE)
    clock = live.ws(srv)

    async def go():
        async with connect(srv.url + "/", ping_interval=None, max_size=None) as ws:
            await ws.send("before")
            assert await ws.recv() == "before"

            def watch():
                pings = 0
                while pings < 4:
                    f = clock.recv_frame(timeout=10)
                    assert f.opcode == OP_PING
                    clock.send_frame(OP_PONG, f.payload)
                    pings += 1

            # the clock blocks on its socket in a thread; the websockets client's event
            # loop keeps running (and answering pings) meanwhile
            await asyncio.wait_for(asyncio.to_thread(watch), 30)
            await ws.send("after")
            assert await ws.recv() == "after"
            assert ws.close_code is None

    asyncio.run(asyncio.wait_for(go(), 60))


def test_idle_timeout_during_a_partial_message(live):
    """A client that stops in the middle of a frame is still idle."""
    srv = live.server(*KEEPALIVE)
    c = live.ws(srv)
    c.send(build_frame(OP_TEXT, b"x" * 1000)[:500])
    f = c.recv_frame(timeout=10)
    assert f.opcode == OP_PING
    c.expect_close(1001, timeout=10)
    wait_for(lambda: srv.stats()["sessions"] == 0, what="sessions 0")


def test_close_timeout_when_peer_never_answers(live):
    """After its close frame the server waits --close-ms for the peer's reply and FIN,
    then closes anyway."""
    srv = live.server("--close-ms", 300)
    c = live.ws(srv)
    c.send_text("/close 4000 bye")
    f = c.recv_frame()
    assert f.opcode == OP_CLOSE and f.code == 4000
    c.expect_eof()  # the server shuts its side down at once
    # we never reply nor close: the server's close timeout drops the connection
    wait_for(lambda: srv.stats()["connections"] == 1, what="the lingering connection is gone")
