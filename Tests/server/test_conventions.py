"""live-server's conventions (Sources/LiveRooms/Rooms.swift, docs/PROTOCOL.md) end to end,
from Python clients, under both codecs; its HTTP side; and its flags.

No test sleeps: "nothing arrived" is always shown by an echo round trip (`Client.sync`),
which the server answers on the same session after anything sent to it before.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from liveproto import JSON, MSGPACK, Client, Msg, http_get, json_decode, mp_decode, open_ws

CODECS = ["json", "msgpack"]


def topic(prefix="room") -> str:
    return f"{prefix}:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def clients(server, servers):
    """clients(codec="json", name=None, srv=None) -> a connected Client, closed after the test."""

    def make(codec="json", name=None, srv=None, **kw):
        c = Client((srv or server).ws, codec, name=name, **kw)
        servers.defer(c.close)
        return c

    return make


def body_for(codec: str, text: str = "hi") -> bytes:
    """A body both codecs carry: JSON (with whitespace and a number form that a re-encoder
    would change, to prove it is passed through verbatim)."""
    return ('{"text": %s,  "n": 1.50, "z": [ ]}' % json.dumps(text)).encode()


# --- join, publish, leave, echo ---------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("size", ["short", "long"])  # MessagePack: fixstr, str8
def test_join_replies_with_ref_and_topic(clients, codec, size):
    c = clients(codec)
    t = topic() if size == "short" else topic("a-topic-name-of-more-than-32-bytes/" * 3)
    c.send("join", t, "j-1")
    assert c.recv() == Msg("reply", t, "j-1")
    # joining twice is fine and replies again
    c.send("join", t, "j-2")
    assert c.recv() == Msg("reply", t, "j-2")


@pytest.mark.parametrize("codec", CODECS)
def test_publish_reaches_every_subscriber_with_the_same_body(clients, codec):
    t = topic()
    alice, bob, carol = clients(codec), clients(codec), clients(codec)
    outsider = clients(codec)
    for c in (alice, bob, carol):
        c.join(t)
    body = body_for(codec, "hello")
    alice.send("publish", t, "p-1", body)

    # the publisher is subscribed: it gets the message and its reply (in either order)
    got = {alice.recv(), alice.recv()}
    assert got == {Msg("message", t, "", body), Msg("reply", t, "p-1")}
    for c in (bob, carol):
        assert c.recv() == Msg("message", t, "", body)
        assert c.sync() == []  # exactly one copy
    assert outsider.sync() == []


def test_fanout_across_event_loops(servers):
    """With several event loops, sessions on every loop get a publish (and each its own
    encoding)."""
    srv = servers.start("--event-loops", "3")
    t = topic()
    subs = [Client(srv.ws, CODECS[i % 2]) for i in range(9)]
    for c in subs:
        servers.defer(c.close)
        c.join(t)
    body = b'{"n": 9}'
    subs[0].send("publish", t, "f-1", body)
    for c in subs[1:]:
        assert c.recv() == Msg("message", t, "", body)
    assert {subs[0].recv(), subs[0].recv()} == {Msg("message", t, "", body), Msg("reply", t, "f-1")}


def test_msgpack_bodies_are_opaque_bytes(clients):
    """Under MessagePack a body is any bytes: NUL, invalid UTF-8, 300 bytes (bin16)."""
    t = topic()
    a, b = clients("msgpack"), clients("msgpack")
    a.join(t)
    b.join(t)
    for body in (b"\x00\xff\xfe binary \xc0", bytes(range(256)) + b"x" * 44):
        ref = a.new_ref()
        a.send("publish", t, ref, body)
        assert b.recv() == Msg("message", t, "", body)
        assert {a.recv(), a.recv()} == {Msg("message", t, "", body), Msg("reply", t, ref)}
    # a str body is accepted too, and delivered as the same bytes
    a.ws.send(b"\x94\xa7publish" + bytes([0xA0 | len(t)]) + t.encode() + b"\xc0\xa5hello")
    assert b.recv() == Msg("message", t, "", b"hello")


@pytest.mark.parametrize("codec", CODECS)
def test_publisher_need_not_be_subscribed(clients, codec):
    t = topic()
    pub, sub = clients(codec), clients(codec)
    sub.join(t)
    body = body_for(codec)
    reply = pub.request("publish", t, body)
    assert reply == Msg("reply", t, reply.ref)
    assert sub.recv() == Msg("message", t, "", body)
    assert pub.sync() == []  # not subscribed: no copy for the publisher


@pytest.mark.parametrize("codec", CODECS)
def test_publish_reaches_only_that_topic(clients, codec):
    t1, t2 = topic(), topic()
    a, b = clients(codec), clients(codec)
    a.join(t1)
    b.join(t2)
    b.join(t1)
    body = body_for(codec, "to t2")
    b.send("publish", t2, "p-2", body)
    assert {b.recv(), b.recv()} == {Msg("message", t2, "", body), Msg("reply", t2, "p-2")}
    assert a.sync() == []


@pytest.mark.parametrize("codec", CODECS)
def test_leave_stops_messages(clients, codec):
    t = topic()
    a, b = clients(codec), clients(codec)
    a.join(t)
    b.join(t)
    b.send("leave", t, "l-1")
    assert b.recv() == Msg("reply", t, "l-1")

    body = body_for(codec, "after leave")
    a.send("publish", t, "p-1", body)
    assert {a.recv(), a.recv()} == {Msg("message", t, "", body), Msg("reply", t, "p-1")}
    # the publish was fanned out before a got its reply; b's echo comes back after anything
    # that was queued for b, so an empty list means b got nothing
    assert b.sync() == []

    # joining again brings the messages back (the leave was of that topic, not the session)
    b.join(t)
    a.send("publish", t, None, body)
    assert b.recv() == Msg("message", t, "", body)


@pytest.mark.parametrize("codec", CODECS)
def test_leave_of_a_topic_not_joined_replies(clients, codec):
    c = clients(codec)
    t = topic()
    c.send("leave", t, "l-9")
    assert c.recv() == Msg("reply", t, "l-9")


@pytest.mark.parametrize("codec", CODECS)
def test_echo_returns_the_same_message(clients, codec):
    c = clients(codec)
    body = body_for(codec, "echo me")
    c.send("echo", "any:topic", "e-1", body)
    assert c.recv() == Msg("echo", "any:topic", "e-1", body)
    # without a ref, without a topic: still echoed, fields as sent
    c.send("echo", None, None, body)
    assert c.recv() == Msg("echo", "", "", body)
    c.send("echo")
    assert c.recv() == Msg("echo")


# --- errors -----------------------------------------------------------------------------


def assert_error(m: Msg, ref: str, reason: str):
    assert (m.type, m.ref) == ("error", ref), m
    assert m.json_body() == {"reason": reason}, m


@pytest.mark.parametrize("codec", CODECS)
def test_unknown_type_is_an_error(clients, codec):
    c = clients(codec)
    c.send("dance", topic(), "u-1", body_for(codec))
    assert_error(c.recv(), "u-1", "unknown type")


@pytest.mark.parametrize("codec", CODECS)
def test_who_lists_the_sessions_of_a_topic_with_their_names(servers, codec):
    srv = servers.start()
    t = topic()
    a = Client(srv.ws + "?name=ada", codec)
    b = Client(srv.ws + "?name=bob", codec)
    servers.defer(a.close)
    servers.defer(b.close)
    a.join(t)
    b.join(t)
    a.send("who", t, "w-1")
    # presence events may arrive first; the reply is the one with our ref
    while True:
        m = a.recv()
        if m.ref == "w-1":
            break
        assert m.type == "presence", m
    assert m.type == "reply"
    names = sorted(p["name"] for p in json.loads(m.body))
    assert names == ["ada", "bob"]


def test_presence_events_report_joins_and_leaves(servers):
    srv = servers.start()
    t = topic()
    a = Client(srv.ws + "?name=ada", "json")
    servers.defer(a.close)
    a.join(t)
    b = Client(srv.ws + "?name=bob", "json")
    b.join(t)
    joined = set()
    while "bob" not in joined:  # batched: ada's own join may come in the same event
        m = a.recv()
        assert m.type == "presence", m
        joined |= {p["name"] for p in json.loads(m.body).get("joined", [])}
    b.close()  # leaving by disconnecting is reported too
    m = a.recv()
    assert m.type == "presence"
    assert len(json.loads(m.body)["left"]) == 1


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("kind", ["join", "leave", "publish"])
def test_missing_topic_is_an_error(clients, codec, kind):
    c = clients(codec)
    c.send(kind, None, "m-1", body_for(codec) if kind == "publish" else None)
    assert_error(c.recv(), "m-1", "missing topic")
    c.send(kind, "", "m-2", None)  # an empty topic is a missing one
    assert_error(c.recv(), "m-2", "missing topic")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("kind", ["join", "publish", "leave", "who", "count"])
def test_topic_too_long_is_an_error(clients, codec, kind):
    """--max-topic-length is 255 bytes by default, counted in UTF-8 bytes."""
    c = clients(codec)
    for n, too_long in ((256, "t" * 256), (256, "\u00e9" * 128)):
        assert len(too_long.encode()) == n
        ref = c.new_ref()
        c.send(kind, too_long, ref, body_for(codec) if kind == "publish" else None)
        assert_error(c.recv(), ref, "topic too long")
    # 255 bytes is still a topic
    for longest in ("t" * 255, "\u00e9" * 127 + "t"):
        c.send("join", longest, "long-2")
        assert c.recv() == Msg("reply", longest, "long-2")


@pytest.mark.parametrize("codec", CODECS)
def test_max_topic_length_flag(servers, codec):
    srv = servers.start("--max-topic-length", "65535")
    c = Client(srv.ws, codec)
    servers.defer(c.close)
    c.send("join", "t" * 65536, "long-1")
    assert_error(c.recv(), "long-1", "topic too long")
    long_topic = "t" * 65535
    c.send("join", long_topic, "long-2")
    assert c.recv() == Msg("reply", long_topic, "long-2")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("limit", [None, 3])
def test_too_many_topics_is_an_error(servers, codec, limit):
    """A session holds at most --max-topics-per-session topics (128 by default); one more
    join is refused, and leaving one makes room again."""
    flags = ["--rate-limit", "0", "--no-presence-events"]  # many joins at once: not the rate limit's test
    if limit:
        flags += ["--max-topics-per-session", str(limit)]
    srv = servers.start(*flags)
    n = limit or 128
    c = Client(srv.ws, codec)
    servers.defer(c.close)
    held = [topic() for _ in range(n)]
    for t in held:
        c.send("join", t, "j")
    for t in held:
        assert c.recv() == Msg("reply", t, "j")
    # joining one it holds already is not one more
    c.join(held[0])
    extra = topic()
    c.send("join", extra, "over")
    assert_error(c.recv(), "over", "too many topics")
    # the refused join took no effect: a publish to it does not reach the session
    other = Client(srv.ws, codec)
    servers.defer(other.close)
    assert other.request("publish", extra, body_for(codec)).type == "reply"
    assert c.sync() == []
    c.send("leave", held[-1], "l")
    assert c.recv() == Msg("reply", held[-1], "l")
    c.join(extra)


@pytest.mark.parametrize("codec", CODECS)
def test_no_ref_means_no_reply(clients, codec):
    t = topic()
    c, other = clients(codec), clients(codec)
    c.send("join", t)
    c.send("leave", topic())
    c.send("publish", topic(), None, body_for(codec))  # nobody subscribed: nothing comes back
    c.send("dance", t)  # unknown type
    c.send("join")  # missing topic
    c.send("publish", "announcements", None, body_for(codec))  # not allowed
    assert c.sync() == []  # nothing before the echo: no reply and no error

    # the join without a ref took effect all the same
    body = body_for(codec, "to c")
    other.send("publish", t, None, body)
    assert c.recv() == Msg("message", t, "", body)


# --- the demo's policy --------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_announcements_only_admins_publish(clients, codec):
    t = "announcements"
    listener = clients(codec, name="listener")
    listener.join(t)  # anyone may join
    guest = clients(codec)  # no name: "guest"
    mallory = clients(codec, name="mallory")
    notadmin = clients(codec, name="xadmin")
    admin = clients(codec, name="admin1")

    body = body_for(codec, "from a non-admin")
    for c in (guest, mallory, notadmin):
        c.send("publish", t, "a-1", body)
        assert_error(c.recv(), "a-1", "not allowed")
    assert listener.sync() == []  # none of those got through

    body = body_for(codec, "from admin1")
    reply = admin.request("publish", t, body)
    assert reply == Msg("reply", t, reply.ref)
    assert listener.recv() == Msg("message", t, "", body)

    # the policy is about that one topic: the non-admins publish elsewhere
    other = topic()
    assert mallory.request("publish", other, body).type == "reply"


# --- codecs side by side --------------------------------------------------------------------


def test_json_and_msgpack_clients_share_a_room(clients):
    t = topic()
    j, m = clients("json"), clients("msgpack")
    assert (j.subprotocol, m.subprotocol) == (JSON, MSGPACK)
    j.join(t)
    m.join(t)

    from_json = b'{"from": "json",  "n": [1, 2.0]}'
    j.send("publish", t, "j-1", from_json)
    frame = m.recv_frame()
    assert isinstance(frame, bytes), frame
    assert mp_decode(frame) == Msg("message", t, "", from_json)
    assert {j.recv(), j.recv()} == {Msg("message", t, "", from_json), Msg("reply", t, "j-1")}

    from_msgpack = b'{"from":"msgpack","ok":true}'
    m.send("publish", t, "m-1", from_msgpack)
    frame = j.recv_frame()
    assert isinstance(frame, str), frame
    assert json_decode(frame) == Msg("message", t, "", from_msgpack)
    assert json.loads(frame) == {"type": "message", "topic": t, "body": {"from": "msgpack", "ok": True}}
    assert {m.recv(), m.recv()} == {Msg("message", t, "", from_msgpack), Msg("reply", t, "m-1")}


def test_a_body_json_cannot_carry_skips_json_subscribers_only(clients):
    """docs/PROTOCOL.md: a body that is not JSON does not reach JSON subscribers; they stay
    open, and MessagePack subscribers get it."""
    t = topic()
    j, m1, m2 = clients("json"), clients("msgpack"), clients("msgpack")
    for c in (j, m1, m2):
        c.join(t)
    body = b"\xff\x00 not json"
    m1.send("publish", t, "b-1", body)
    assert m2.recv() == Msg("message", t, "", body)
    assert {m1.recv(), m1.recv()} == {Msg("message", t, "", body), Msg("reply", t, "b-1")}
    assert j.sync() == []
    # and the JSON session still works
    ok = b'{"still": "open"}'
    m1.send("publish", t, None, ok)
    assert j.recv() == Msg("message", t, "", ok)


def test_topics_with_escapes_and_unicode_across_codecs(clients):
    """A topic is the same string whether a JSON client wrote it escaped or a MessagePack
    client wrote its UTF-8 bytes; the server escapes it correctly when it writes JSON."""
    weird = 'caf\u00e9 "q" \\ back\nnl\ttab \x01 \u2615 \U0001d11e </script>'
    j, m = clients("json"), clients("msgpack")
    # ensure_ascii: the JSON client's frame spells everything with \u escapes
    j.ws.send('{"type":"join","topic":' + json.dumps(weird, ensure_ascii=True) + ',"ref":"x\\u0031"}')
    frame = j.recv_frame()
    assert json.loads(frame) == {"type": "reply", "topic": weird, "ref": "x1"}
    m.join(weird)
    body = b'{"a":1}'
    m.send("publish", weird, "p-1", body)
    assert j.recv() == Msg("message", weird, "", body)
    assert {m.recv(), m.recv()} == {Msg("message", weird, "", body), Msg("reply", weird, "p-1")}


@pytest.mark.parametrize("codec", CODECS)
def test_publish_without_body(clients, codec):
    t = topic()
    a, b = clients(codec), clients(codec)
    b.join(t)
    assert a.request("publish", t).type == "reply"
    assert b.recv() == Msg("message", t)


@pytest.mark.parametrize("codec,frame,code", [
    ("json", b"\x94\xa4echo\xc0\xc0\xc0", 1003),  # binary on a JSON session
    ("msgpack", '{"type":"echo"}', 1003),  # text on a MessagePack session
    ("json", '{"topic":"no type"}', 1007),
    ("json", '{"type":"echo",', 1007),
    ("msgpack", b"\x93\xa4echo\xc0\xc0", 1007),  # an array of 3
    ("msgpack", b"\x94\xa4echo\xc0\xc0\xc4\x10ab", 1007),  # a body shorter than its length
], ids=["binary-on-json", "text-on-msgpack", "json-no-type", "json-truncated", "msgpack-array-3",
        "msgpack-lying-length"])
def test_frames_that_do_not_decode_close_the_session(clients, codec, frame, code):
    bystander = clients(codec)
    c = clients(codec)
    c.ws.send(frame)
    with pytest.raises(ConnectionClosed) as e:
        c.recv()
    assert e.value.rcvd is not None and e.value.rcvd.code == code
    assert bystander.sync() == []  # the others are unaffected


def test_subprotocol_negotiation(server, servers):
    def sub(protocols):
        ws = open_ws(server.ws, subprotocols=protocols)
        servers.defer(ws.close)
        return ws.subprotocol

    assert sub([JSON]) == JSON
    assert sub([MSGPACK]) == MSGPACK
    assert sub(["x.unknown", MSGPACK, JSON]) == MSGPACK  # the first one the server speaks
    assert sub(None) is None  # none asked: the default codec, no header


def test_no_subprotocol_gets_json_by_default(clients):
    c = clients(None, wire="json")
    assert c.subprotocol is None
    c.send("echo", "t", "d-1", '{"a":1}')
    frame = c.recv_frame()
    assert isinstance(frame, str)
    assert json_decode(frame) == Msg("echo", "t", "d-1", b'{"a":1}')


def test_default_codec_msgpack(servers):
    srv = servers.start("--default-codec", "msgpack")
    c = Client(srv.ws, None, wire="msgpack")
    servers.defer(c.close)
    assert c.subprotocol is None
    c.ws.send(b"\x94\xa4echo\xa1t\xa3d-1\xc4\x02hi")
    frame = c.recv_frame()
    assert isinstance(frame, bytes), frame
    assert mp_decode(frame) == Msg("echo", "t", "d-1", b"hi")
    t = topic()
    c.join(t)
    c.send("publish", t, "p-1", b"\x01\x02")
    assert {c.recv(), c.recv()} == {Msg("message", t, "", b"\x01\x02"), Msg("reply", t, "p-1")}
    # a client that asks for JSON still gets JSON from that server
    j = Client(srv.ws, "json")
    servers.defer(j.close)
    assert j.subprotocol == JSON
    j.send("echo", None, "j-1", "[1]")
    assert isinstance(j.recv_frame(), str)


# --- HTTP and the upgrade ---------------------------------------------------------------------


def test_http_routes(server):
    status, headers, body = http_get(f"{server.http}/healthz")
    assert (status, body.strip()) == (200, b"ok")

    status, headers, body = http_get(f"{server.http}/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b"<html" in body and b"/live.js" in body

    status, headers, body = http_get(f"{server.http}/live.js")
    assert status == 200
    assert headers["Content-Type"].startswith("text/javascript")
    assert b"export class LiveClient" in body

    for path in ("/nope", "/index.html", "/ws", "/live.js/x", "/Public/live.js"):
        status, _, _ = http_get(f"{server.http}{path}")
        assert status == 404, path


def test_http_query_strings_are_ignored(server):
    for path in ("/?name=a&room=b", "/live.js?v=2", "/healthz?probe=1"):
        status, _, _ = http_get(f"{server.http}{path}")
        assert status == 200, path


@pytest.mark.parametrize("path", ["/", "/live.js", "/healthz"])
def test_head_has_no_body(server, path):
    response = raw_response(server.port, f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head, _, rest = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert rest == b"", f"{len(rest)} bytes of body after a HEAD response"


@pytest.mark.parametrize("path", ["/", "/other", "/ws/", "/healthz"])
def test_upgrade_elsewhere_than_ws_is_404(server, path):
    with pytest.raises(InvalidStatus) as e:
        open_ws(f"ws://127.0.0.1:{server.port}{path}", subprotocols=[JSON])
    assert e.value.response.status_code == 404


def test_upgrade_on_ws_with_a_query(server, servers):
    ws = open_ws(f"{server.ws}?name=ada&x=1", subprotocols=[JSON])
    servers.defer(ws.close)
    assert ws.subprotocol == JSON


def test_allowed_origin(servers):
    srv = servers.start("--allowed-origin", "http://ok.example")
    for origin in ("http://evil.example", "http://ok.example.evil.example", "https://ok.example"):
        with pytest.raises(InvalidStatus) as e:
            open_ws(srv.ws, subprotocols=[JSON], origin=origin)
        assert e.value.response.status_code == 403, origin
    c = Client(srv.ws, "json", origin="http://ok.example")
    servers.defer(c.close)
    c.join(topic())


def raw_response(port: int, request: bytes | None) -> bytes:
    """What the server writes on a fresh connection, until it closes it (or a deadline)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        if request:
            s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk


def test_max_sessions(servers):
    srv = servers.start("--max-sessions", "1")
    c = Client(srv.ws, "json")
    servers.defer(c.close)
    # over the limit, the request is read and answered 503 (a complete response, no reset)
    response = raw_response(srv.port, f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    assert response.startswith(b"HTTP/1.1 503 "), response
    # the first session is unaffected
    c.join(topic())
    # once it is gone there is room again (the server notices the close asynchronously:
    # retry, each attempt a real connection, until a deadline)
    c.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            ws = open_ws(srv.ws, subprotocols=[JSON])
            break
        except (InvalidHandshake, ConnectionClosed, OSError):  # a 503, possibly seen as a reset
            assert time.monotonic() < deadline, "no session accepted after the first one closed"
            time.sleep(0.02)  # the polling period of a real check
    servers.defer(ws.close)
    assert ws.subprotocol == JSON


def test_max_sessions_per_ip(servers):
    """--max-sessions-per-ip (off by default): one more connection from the address is
    answered 429, and the others are unaffected."""
    srv = servers.start("--max-sessions-per-ip", "2")
    a, b = Client(srv.ws, "json"), Client(srv.ws, "json")
    servers.defer(a.close)
    servers.defer(b.close)
    response = raw_response(srv.port, f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    assert response.startswith(b"HTTP/1.1 429 "), response
    a.join(topic())
    b.join(topic())


def test_max_message_size(servers):
    srv = servers.start("--max-message-size", "1000")
    c = Client(srv.ws, "json")
    servers.defer(c.close)
    small = '"' + "a" * 500 + '"'
    c.send("echo", None, "s-1", small)
    assert c.recv() == Msg("echo", "", "s-1", small.encode())
    c.send("echo", None, "s-2", '"' + "a" * 2000 + '"')
    with pytest.raises(ConnectionClosed) as e:
        c.recv()
    assert e.value.rcvd is not None and e.value.rcvd.code == 1009


def test_max_message_size_defaults_to_1_mib(clients):
    c = clients("json")
    fits = '"' + "a" * 1_048_000 + '"'  # with the JSON around it, just under 1 MiB
    c.send("echo", None, "s-1", fits)
    assert c.recv() == Msg("echo", "", "s-1", fits.encode())
    c.send("echo", None, "s-2", '"' + "a" * 1_048_576 + '"')
    with pytest.raises(ConnectionClosed) as e:
        c.recv()
    assert e.value.rcvd is not None and e.value.rcvd.code == 1009


# --- shutdown -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_closes_sessions_with_1001(servers, sig):
    srv = servers.start()
    clients = [Client(srv.ws, codec) for codec in CODECS]
    for c in clients:
        servers.defer(c.close)
        c.join(topic())
    srv.send_signal(sig)
    for c in clients:
        with pytest.raises(ConnectionClosed) as e:
            c.recv()
        assert e.value.rcvd is not None and e.value.rcvd.code == 1001
    assert srv.wait() == 0


def test_messagepack_clients_get_server_written_bodies_as_messagepack(servers):
    """Regression: under MessagePack, presence events, the who and count replies and error
    reasons were JSON text inside a bin, so a MessagePack client needed a JSON parser. They
    come as native maps and arrays now; what clients publish stays an opaque bin."""
    srv = servers.start()
    t = topic()
    a = Client(srv.ws + "?name=ada", "msgpack")
    servers.defer(a.close)
    a.join(t)
    while True:  # ada's own join comes back as a presence event
        m = a.recv()
        if m.type == "presence":
            break
    assert m.native and json.loads(m.body)["joined"][0]["name"] == "ada"
    who = a.request("who", t)
    assert who.native and [p["name"] for p in json.loads(who.body)] == ["ada"]
    count = a.request("count", t)
    assert count.native and json.loads(count.body) == {"count": 1}
    error = a.request("frobnicate", t)
    assert error.type == "error" and error.native and json.loads(error.body) == {"reason": "unknown type"}
    a.send("publish", t, "p-1", b"\x00\x01 opaque")
    got = {a.recv(), a.recv()}  # ada is a subscriber too: the message and the reply
    assert got == {Msg("message", t, "", b"\x00\x01 opaque"), Msg("reply", t, "p-1")}
