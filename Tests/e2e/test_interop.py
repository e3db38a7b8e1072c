"""Interoperability with two independent client libraries: websockets (asyncio API) and
websocket-client (synchronous)."""

import asyncio
import os

import pytest
import websocket  # websocket-client
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

MIB = 1 << 20
DEFAULT_MAX = 16 * MIB  # clive_options.max_message default
SIZES = [0, 125, 126, 65535, 65536, DEFAULT_MAX]
SIZE_IDS = ["0B", "125B", "126B", "65535B", "64KiB", "16MiB"]
TIMEOUT = 60  # generous for 16 MiB under ASan on a slow CI machine


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def payload(kind: str, size: int):
    if kind == "text":
        # mixed widths, cut to exactly `size` bytes at a character boundary
        unit = "ab€😀"  # 1+1+3+4 = 9 bytes
        s = unit * (size // 9) + "z" * (size % 9)
        assert len(s.encode()) == size
        return s
    return os.urandom(size) if size <= MIB else bytes(range(256)) * (size // 256) + bytes(size % 256)


def ws_connect(server, **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 10)
    return connect(server.url + "/", **kw)


def wsc_connect(server, **kw):
    kw.setdefault("timeout", TIMEOUT)
    kw.setdefault("skip_utf8_validation", True)  # its pure-Python validator is slow; we compare contents
    ws = websocket.create_connection(server.url + "/", **kw)
    return ws


# --- websockets ------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_websockets_echo(echo_server, kind, size):
    data = payload(kind, size)

    async def go():
        async with ws_connect(echo_server) as ws:
            await ws.send(data)
            got = await ws.recv()
            assert type(got) is type(data)
            assert got == data
            await ws.close()
            assert ws.close_code == 1000

    run(go())


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_websockets_over_max_message_is_1009(echo_server, kind):
    data = payload(kind, DEFAULT_MAX + 1)

    async def go():
        # no `async with`: websockets 17's close() after the peer closed a half-closed
        # transport trips over the closed transport (AttributeError in asyncio's abort)
        ws = await ws_connect(echo_server)
        await ws.send(data)
        with pytest.raises(ConnectionClosedError) as ei:
            await ws.recv()
        assert ei.value.rcvd is not None and ei.value.rcvd.code == 1009
        await ws.wait_closed()
        assert ws.close_code == 1009

    run(go())


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_websockets_fragmented(echo_server, kind):
    parts = [payload(kind, n) for n in (0, 1, 125, 126, 5000, 70000, 3)]

    async def go():
        async with ws_connect(echo_server) as ws:
            await ws.send(parts)  # an iterable: one message, one frame per item
            got = await ws.recv()
            assert got == parts[0][:0].join(parts)

            async def agen():
                for p in parts:
                    yield p

            await ws.send(agen())  # an async iterable too
            assert await ws.recv() == parts[0][:0].join(parts)

    run(go())


def test_websockets_many_messages_in_flight(echo_server):
    async def go():
        async with ws_connect(echo_server) as ws:
            for i in range(500):
                await ws.send(f"msg {i}")
            for i in range(500):
                assert await ws.recv() == f"msg {i}"

    run(go())


def test_websockets_ping_pong(echo_server):
    async def go():
        async with ws_connect(echo_server) as ws:
            for data in (b"", b"hello", b"x" * 125):
                waiter = await ws.ping(data)
                latency = await asyncio.wait_for(waiter, 10)
                assert latency >= 0
            await ws.send("after pings")
            assert await ws.recv() == "after pings"

    run(go())


def test_websockets_close_with_reason(echo_server):
    async def go():
        ws = await ws_connect(echo_server)
        await ws.close(4001, "done here")
        assert ws.close_code == 4001 and ws.close_reason == "done here"

    run(go())


def test_websockets_subprotocol(live):
    srv = live.server()

    async def go():
        async with ws_connect(srv, subprotocols=["live.v1.msgpack", "live.v1.json"]) as ws:
            assert ws.subprotocol == "live.v1.msgpack"
        async with ws_connect(srv, subprotocols=["live.v1.json"]) as ws:
            assert ws.subprotocol == "live.v1.json"
        async with ws_connect(srv) as ws:
            assert ws.subprotocol is None

    run(go())


def test_websockets_many_concurrent_clients(echo_server):
    async def one(i):
        async with ws_connect(echo_server) as ws:
            for k in range(20):
                await ws.send(f"{i}:{k}")
                assert await ws.recv() == f"{i}:{k}"

    async def go():
        await asyncio.gather(*(one(i) for i in range(50)))

    run(go())


# --- websocket-client ------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_websocket_client_echo(echo_server, kind, size):
    data = payload(kind, size)
    ws = wsc_connect(echo_server)
    try:
        if kind == "text":
            ws.send(data)
        else:
            ws.send_binary(data)
        opcode, got = ws.recv_data()
        assert opcode == (websocket.ABNF.OPCODE_TEXT if kind == "text" else websocket.ABNF.OPCODE_BINARY)
        assert got == (data.encode() if kind == "text" else data)
        ws.close()
        assert ws.status == 101  # the handshake status, kept
    finally:
        ws.shutdown()


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_websocket_client_over_max_message_is_1009(echo_server, kind):
    data = payload(kind, DEFAULT_MAX + 1)
    ws = wsc_connect(echo_server)
    try:
        ws.send(data, websocket.ABNF.OPCODE_TEXT if kind == "text" else websocket.ABNF.OPCODE_BINARY)
        opcode, frame = ws.recv_data_frame(True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1009
    finally:
        ws.shutdown()


def test_websocket_client_fragmented(echo_server):
    ABNF = websocket.ABNF
    ws = wsc_connect(echo_server)
    try:
        ws.send_frame(ABNF.create_frame("Hello ", ABNF.OPCODE_TEXT, 0))
        ws.send_frame(ABNF.create_frame("frag", ABNF.OPCODE_CONT, 0))
        ws.send_frame(ABNF.create_frame("mented", ABNF.OPCODE_CONT, 1))
        assert ws.recv() == "Hello fragmented"
        ws.send_frame(ABNF.create_frame(b"\x00" * 70000, ABNF.OPCODE_BINARY, 0))
        ws.ping(b"between")
        ws.send_frame(ABNF.create_frame(b"\x01" * 10, ABNF.OPCODE_CONT, 1))
        op, frame = ws.recv_data_frame(True)
        assert op == ABNF.OPCODE_PONG and frame.data == b"between"
        assert ws.recv() == b"\x00" * 70000 + b"\x01" * 10
    finally:
        ws.close()


def test_websocket_client_ping_pong(echo_server):
    ABNF = websocket.ABNF
    ws = wsc_connect(echo_server)
    try:
        for data in (b"", b"ping payload", b"y" * 125):
            ws.ping(data)
            op, frame = ws.recv_data_frame(True)
            assert op == ABNF.OPCODE_PONG and frame.data == data
        ws.send("after")
        assert ws.recv() == "after"
    finally:
        ws.close()


def test_websocket_client_close_handshake(echo_server):
    ABNF = websocket.ABNF
    ws = wsc_connect(echo_server)
    try:
        ws.send_close(1000, b"bye")
        op, frame = ws.recv_data_frame(True)
        assert op == ABNF.OPCODE_CLOSE and frame.data == b"\x03\xe8bye"
    finally:
        ws.shutdown()


def test_websocket_client_subprotocol(live):
    srv = live.server()
    ws = wsc_connect(srv, subprotocols=["live.v1.msgpack", "live.v1.json"])
    try:
        assert ws.getsubprotocol() == "live.v1.msgpack"
        ws.send("/id")
        assert ws.recv().isdigit()
    finally:
        ws.close()

