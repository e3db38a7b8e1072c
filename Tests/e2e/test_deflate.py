"""permessage-deflate (RFC 7692): the negotiation as real clients offer it, compressed
messages in and out, the bad-input closes (zip bomb 1009, corrupt stream 1007, RSV1 where
it has no meaning 1002), and one topic with compressed and plain subscribers."""

import asyncio
import json
import os
import subprocess
import zlib

import pytest
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

import wsraw
from wsraw import OP_BINARY, OP_CONT, OP_PING, OP_TEXT

TIMEOUT = 30


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def deflate(data: bytes) -> bytes:
    """A message compressed as RFC 7692 7.2.1 says: raw deflate, sync flush, tail cut."""
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(payload: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


def chat_json(i: int) -> str:
    """A realistic chat message, about 1 KiB of JSON."""
    return json.dumps({
        "type": "message", "room": "general", "id": f"msg-{i:06d}",
        "user": {"id": 4242, "name": "Ada Lovelace", "avatar": "https://example.com/a/4242.png"},
        "text": "The analytical engine weaves algebraic patterns just as the Jacquard loom "
                "weaves flowers and leaves. " * 6,
        "reactions": [{"emoji": "thumbs_up", "count": i % 7}, {"emoji": "heart", "count": 2}],
        "sent_at": "2026-12-03T08:00:00Z",
    })


PMD = ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")


def ext_of(resp) -> str | None:
    return resp.header("Sec-WebSocket-Extensions")


# --- negotiation -------------------------------------------------------------------------

ANSWERS = [
    # Chromium, Python websockets and Node ws all offer this
    ("permessage-deflate; client_max_window_bits",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ("permessage-deflate",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ("permessage-deflate; server_max_window_bits=10",
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_no_context_takeover"),
    ('permessage-deflate; server_max_window_bits="12"; client_max_window_bits=9',
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_no_context_takeover"),
    # zlib cannot compress with a 256-byte window: that offer is declined, the next taken
    ("permessage-deflate; server_max_window_bits=8, permessage-deflate",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ("permessage-deflate; server_max_window_bits=8", None),
    # malformed or unknown parameters decline the offer, not the connection
    ("permessage-deflate; server_max_window_bits", None),
    ("permessage-deflate; server_max_window_bits=16", None),
    ("permessage-deflate; client_max_window_bits=7", None),
    ("permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
    ("permessage-deflate; server_no_context_takeover=1", None),
    ("permessage-deflate; foo=1, permessage-deflate; client_max_window_bits=15",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ("x-webkit-deflate-frame", None),
    ("foo, bar; baz=1, permessage-deflate",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
]


@pytest.mark.parametrize("offer,answer", ANSWERS, ids=[a[0] for a in ANSWERS])
def test_negotiation_answers(live, offer, answer):
    srv = live.server("--deflate")
    c = live.raw(srv)
    resp = c.upgrade(extra=[("Sec-WebSocket-Extensions", offer)])
    assert ext_of(resp) == answer
    # the session works either way
    assert c.command("/id").isdigit()


def test_offers_across_several_headers(live):
    srv = live.server("--deflate")
    c = live.raw(srv)
    resp = c.upgrade(extra=[("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=8"),
                            ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=11")])
    assert ext_of(resp) == ("permessage-deflate; server_no_context_takeover; "
                            "server_max_window_bits=11; client_no_context_takeover")


def test_off_by_default(live):
    srv = live.server()
    c = live.raw(srv)
    resp = c.upgrade(extra=[PMD])
    assert ext_of(resp) is None
    # and RSV1 then has no meaning: 1002
    c.send_frame(OP_TEXT, deflate(b"hello" * 40), rsv=4)
    c.expect_close(1002)


def test_client_context_takeover_when_allowed(live):
    srv = live.server("--deflate", "--deflate-client-bits", "10")
    c = live.raw(srv)
    resp = c.upgrade(extra=[PMD])
    assert ext_of(resp) == "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"
    # the client keeps one compressor across messages (context takeover, 2^10 window)
    comp = zlib.compressobj(wbits=-10)
    for i in range(5):
        msg = chat_json(i).encode()
        out = comp.compress(msg) + comp.flush(zlib.Z_SYNC_FLUSH)
        c.send_frame(OP_TEXT, out[:-4], rsv=4)
        f = c.recv_frame()
        assert f.rsv == 4 and f.opcode == OP_TEXT
        assert inflate(f.payload) == msg
    # a client that gives up its context keeps no state on the server either
    c2 = live.raw(srv)
    resp = c2.upgrade(extra=[("Sec-WebSocket-Extensions", "permessage-deflate; client_no_context_takeover")])
    assert ext_of(resp) == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


# --- messages in and out -----------------------------------------------------------------


def test_raw_compressed_echo(live):
    srv = live.server("--deflate")
    c = live.raw(srv)
    c.upgrade(extra=[PMD])
    for i in range(3):  # the loop's streams are reset between messages
        msg = chat_json(i).encode()
        c.send_frame(OP_TEXT, deflate(msg), rsv=4)
        f = c.recv_frame()
        assert f.opcode == OP_TEXT and f.fin and f.rsv == 4, f
        assert len(f.payload) < len(msg) // 2
        assert inflate(f.payload) == msg
    # under the threshold (128 bytes) the answer goes plain, however it came
    c.send_frame(OP_TEXT, deflate(b"short"), rsv=4)
    f = c.recv_frame()
    assert f.rsv == 0 and f.payload == b"short"
    # binary, and a plain message on the same connection
    blob = bytes(range(256)) * 8
    c.send_frame(OP_BINARY, deflate(blob), rsv=4)
    f = c.recv_frame()
    assert f.opcode == OP_BINARY and f.rsv == 4 and inflate(f.payload) == blob
    c.send_text("x" * 300)
    f = c.recv_frame()
    assert f.rsv == 4 and inflate(f.payload) == b"x" * 300


def test_incompressible_goes_plain(live):
    srv = live.server("--deflate")
    c = live.raw(srv)
    c.upgrade(extra=[PMD])
    noise = os.urandom(4000)
    c.send_binary(noise)
    f = c.recv_frame()
    assert f.rsv == 0 and f.payload == noise


def test_fragmented_compressed_message(live):
    srv = live.server("--deflate")
    c = live.raw(srv)
    c.upgrade(extra=[PMD])
    msg = chat_json(7).encode()
    z = deflate(msg)
    parts = [z[:10], z[10:11], z[11:200], z[200:]]
    c.send_frame(OP_TEXT, parts[0], rsv=4, fin=False)
    c.send_frame(OP_CONT, parts[1], fin=False)
    c.send_frame(OP_PING, b"in between")  # a control frame between fragments
    c.send_frame(OP_CONT, parts[2], fin=False)
    c.send_frame(OP_CONT, parts[3], fin=True)
    pong = c.recv_frame()
    assert pong.opcode == 0xA and pong.payload == b"in between"
    f = c.recv_frame()
    assert f.rsv == 4 and inflate(f.payload) == msg


def test_websockets_client_compression(live):
    srv = live.server("--deflate")

    async def go():
        async with connect(srv.url + "/", max_size=None, ping_interval=None) as ws:
            assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
            pmd = ws.protocol.extensions[0]
            assert pmd.remote_no_context_takeover and pmd.local_no_context_takeover
            for i in range(50):
                m = chat_json(i)
                await ws.send(m)
                assert await ws.recv() == m
            big = "all work and no play " * 100000  # 2 MB, compresses to a few KiB
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send(b"\x00" * 10)
            assert await ws.recv() == b"\x00" * 10

    run(go())


def test_websockets_client_with_context_takeover(live):
    srv = live.server("--deflate", "--deflate-client-bits", "12")

    async def go():
        factory = ClientPerMessageDeflateFactory(client_max_window_bits=True)
        async with connect(srv.url + "/", extensions=[factory], compression=None,
                           max_size=None, ping_interval=None) as ws:
            pmd = ws.protocol.extensions[0]
            assert not pmd.local_no_context_takeover  # the client keeps its context
            for i in range(30):
                m = chat_json(i)
                await ws.send(m)
                assert await ws.recv() == m

    run(go())


NODE_CLIENT = r"""
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[1], {perMessageDeflate: {threshold: 0}});
const msgs = JSON.parse(process.argv[2]);
let i = 0;
ws.on('open', () => ws.send(msgs[0]));
ws.on('message', (data, isBinary) => {
  if (data.toString() !== msgs[i]) { console.log('MISMATCH ' + i); process.exit(1); }
  i++;
  if (i === msgs.length) {
    const pmd = ws._extensions['permessage-deflate'];
    console.log('EXT ' + ws.extensions + ' ' + JSON.stringify(pmd && pmd.params));
    ws.close(1000);
  } else ws.send(msgs[i]);
});
ws.on('close', (code) => { console.log('CLOSED ' + code); process.exit(i === msgs.length ? 0 : 1); });
ws.on('error', (e) => { console.log('ERROR ' + e.message); process.exit(1); });
"""


def test_node_ws_client_compression(live):
    srv = live.server("--deflate")
    msgs = [chat_json(i) for i in range(20)] + ["tiny", "é" * 500]
    env = dict(os.environ, NODE_PATH="/usr/share/nodejs")
    out = subprocess.run(["node", "-e", NODE_CLIENT, srv.url + "/", json.dumps(msgs)],
                         env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert 'EXT permessage-deflate {"server_no_context_takeover":true,"client_no_context_takeover":true}' in out.stdout
    assert "CLOSED 1000" in out.stdout


# --- bad input ---------------------------------------------------------------------------


def test_zip_bomb_is_1009(live):
    srv = live.server("--deflate", "--max-message", 65536)
    c = live.raw(srv)
    c.upgrade(extra=[PMD])
    bomb = deflate(b"\x00" * (64 << 20))  # 64 MiB of zeros in about 64 KiB... less
    assert len(bomb) < 65536
    c.send_frame(OP_BINARY, bomb, rsv=4)
    c.expect_close(1009)


def test_just_under_max_message_inflates(live):
    srv = live.server("--deflate", "--max-message", 65536)
    c = live.raw(srv)
    c.upgrade(extra=[PMD])
    c.send_frame(OP_BINARY, deflate(b"a" * 65536), rsv=4)
    f = c.recv_frame()
    assert inflate(f.payload) == b"a" * 65536
    c.send_frame(OP_BINARY, deflate(b"a" * 65537), rsv=4)
    c.expect_close(1009)


def test_corrupt_stream_is_1007(live):
    srv = live.server("--deflate")
    c = live.raw(srv)
    c.upgrade(extra=[PMD])
    c.send_frame(OP_TEXT, b"\xff\xff\xff\xff garbage", rsv=4)
    c.expect_close(1007)


def test_compressed_invalid_utf8_is_1007(live):
    srv = live.server("--deflate")
    c = live.raw(srv)
    c.upgrade(extra=[PMD])
    c.send_frame(OP_TEXT, deflate(b"ok so far \xc0\xaf"), rsv=4)
    c.expect_close(1007)


@pytest.mark.parametrize("case", ["ping", "continuation", "rsv2"])
def test_rsv_misuse_is_1002(live, case):
    srv = live.server("--deflate")
    c = live.raw(srv)
    c.upgrade(extra=[PMD])
    if case == "ping":
        c.send_frame(OP_PING, b"", rsv=4)
    elif case == "continuation":
        c.send_frame(OP_TEXT, b"", fin=False)
        c.send_frame(OP_CONT, deflate(b"abc"), rsv=4)
    else:
        c.send_frame(OP_TEXT, deflate(b"abc"), rsv=2)
    c.expect_close(1002)


def test_rsv1_without_negotiation_on_deflate_server(live):
    srv = live.server("--deflate")
    c = live.raw(srv)
    c.upgrade()  # no offer
    c.send_frame(OP_TEXT, deflate(b"abc"), rsv=4)
    c.expect_close(1002)


# --- publish: compressed once, plain and compressed subscribers ----------------------------


def test_mixed_subscribers_get_the_same_messages(live):
    srv = live.server("--deflate", "--loops", 2)
    plain = [live.ws(srv) for _ in range(3)]
    comp = []
    for _ in range(3):
        c = live.raw(srv)
        c.upgrade(extra=[PMD])
        comp.append(c)
    for c in plain + comp:
        assert c.command("/sub room") == "ok sub room"

    async def websockets_subscriber(ready, done):
        async with connect(srv.url + "/", max_size=None, ping_interval=None) as ws:
            await ws.send("/sub room")
            assert await ws.recv() == "ok sub room"
            ready.set()
            got = [await ws.recv() for _ in range(len(msgs))]
            done.append(got)

    msgs = [chat_json(i) for i in range(20)] + ["short one", "x" * 127, "y" * 128]
    pub = live.ws(srv)

    async def go():
        ready, done = asyncio.Event(), []
        task = asyncio.create_task(websockets_subscriber(ready, done))
        await ready.wait()
        for m in msgs:
            await asyncio.to_thread(pub.command, f"/pub room {m}")
        await task
        return done[0]

    got_ws = run(go())
    assert got_ws == msgs
    for c in plain:
        for m in msgs:
            f = c.recv_frame()
            assert f.rsv == 0 and f.text == m
    for c in comp:
        for m in msgs:
            f = c.recv_frame()
            if len(m.encode()) >= 128:
                assert f.rsv == 4, f
                assert inflate(f.payload).decode() == m
            else:
                assert f.rsv == 0 and f.text == m


def test_a_publish_is_compressed_once(live):
    """Compression is per publish, not per subscriber: 40 compressed subscribers over two
    loops, 10 publishes, and at most one compression per publish per loop (two loops may
    race on the same publish; one result is kept)."""
    srv = live.server("--deflate", "--loops", 2)
    subs = []
    for _ in range(40):
        c = live.raw(srv)
        c.upgrade(extra=[PMD])
        assert c.command("/sub feed") == "ok sub feed"
        subs.append(c)
    pub = live.ws(srv)
    before = srv.stats()["compressions"]
    msgs = [chat_json(i) for i in range(10)]
    for m in msgs:
        assert pub.command(f"/pub feed {m}") == "ok pub feed"
    for c in subs:
        for m in msgs:
            f = c.recv_frame()
            assert f.rsv == 4 and inflate(f.payload).decode() == m
    made = srv.stats()["compressions"] - before
    assert len(msgs) <= made <= 2 * len(msgs), made
