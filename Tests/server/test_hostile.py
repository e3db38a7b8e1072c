"""Hostile but well-formed clients (issue 11): what one client can make live-server send,
hold or mix up is bounded. Each test plays the attacker against a real live-server.

No test sleeps: "nothing arrived" is shown by an echo round trip (`Client.sync`).
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

from liveproto import Client, Msg, mp_str
from liveserver import server_binary

# one base letter and 1,300 combining acute accents: a single Character of 2,601 bytes
HEAVY_NAME = "a" + "\u0301" * 1300
# what is left of it at 32 bytes, cut between scalars: the letter and 15 accents (31 bytes)
HEAVY_NAME_CUT = "a" + "\u0301" * 15


def topic(prefix="room") -> str:
    return f"{prefix}:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def connect(servers):
    """connect(srv, codec="json", name=None) -> a Client closed after the test."""

    def make(srv, codec="json", name=None, **kw):
        c = Client(srv.ws, codec, name=name, **kw)
        servers.defer(c.close)
        return c

    return make


def recv_reply(c: Client, ref: str) -> Msg:
    """The answer to ref, skipping presence events."""
    while True:
        m = c.recv()
        if m.type != "presence":
            assert m.ref == ref, m
            return m


def presence_events(c: Client, until) -> list[dict]:
    """Presence bodies received until `until(events)` is true."""
    events = []
    while not until(events):
        m = c.recv()
        assert m.type == "presence", m
        events.append(json.loads(m.body))
    return events


def joined_ids(events) -> list[str]:
    return [e["id"] for ev in events for e in ev.get("joined", [])]


# --- MessagePack strings are never repaired --------------------------------------------------


def raw_msgpack(type: bytes, topic: bytes | None, ref: bytes | None) -> bytes:
    """A frame whose str fields are the given bytes, valid UTF-8 or not."""

    def s(b):
        return b"\xc0" if b is None else bytes([0xA0 | len(b)]) + b

    return b"\x94" + s(type) + s(topic) + s(ref) + b"\xc0"


@pytest.mark.parametrize("frame", [
    raw_msgpack(b"join", b"room:\xff", b"j-1"),
    raw_msgpack(b"publish", b"room:\xfe", b"p-1"),
    raw_msgpack(b"echo", b"room:x", b"e-\xff"),
    raw_msgpack(b"jo\xffin", b"room:x", None),
], ids=["join-topic", "publish-topic", "echo-ref", "type"])
def test_msgpack_invalid_utf8_closes_with_1007(servers, connect, frame):
    """room:\\xff and room:\\xfe used to be repaired into the same topic, room:\\ufffd: now a
    str field that is not UTF-8 closes the session, and nothing reaches that topic."""
    srv = servers.start("--event-loops", "1")
    repaired = "room:\ufffd"
    members = [connect(srv, "json", name="member"), connect(srv, "msgpack", name="member")]
    for m in members:
        m.join(repaired)
    # each member hears of both joins; after that, anything is the attacker's doing
    for m in members:
        presence_events(m, lambda evs: len(joined_ids(evs)) == 2)

    attacker = connect(srv, "msgpack", name="attacker")
    attacker.ws.send(frame)
    with pytest.raises(ConnectionClosed) as e:
        attacker.recv()
    assert e.value.rcvd is not None and e.value.rcvd.code == 1007

    # a well-behaved client joins and publishes: the members get its join and its message,
    # and nothing before them (no join, leave or message of the attacker's)
    good = connect(srv, "msgpack", name="good")
    good.join(repaired)
    good.send("publish", repaired, None, b'{"ok":1}')
    for m in members:
        got = []

        def seen_good_join():
            return any(x.type == "presence" and "good" in names_joined(x) for x in got)

        while not (seen_good_join() and any(x.type == "message" for x in got)):
            got.append(m.recv())
        assert [x for x in got if x.type != "presence"] == [Msg("message", repaired, "", b'{"ok":1}')], got
        assert all(names_joined(x) == ["good"] for x in got if x.type == "presence"), got
        assert m.sync() == []


def names_joined(m: Msg) -> list[str]:
    body = json.loads(m.body)
    assert set(body) == {"joined"}, body
    return [e["name"] for e in body["joined"]]


def test_msgpack_valid_utf8_is_taken_as_sent(servers, connect):
    srv = servers.start()
    c = connect(srv, "msgpack")
    t = "room:caf\u00e9\u2615"
    c.ws.send(b"\x94" + mp_str("echo") + mp_str(t) + mp_str("r-\u00e9") + b"\xc4\x02\xff\xfe")
    assert c.recv() == Msg("echo", t, "r-\u00e9", b"\xff\xfe")


# --- presence output is bounded ---------------------------------------------------------------


def test_display_name_is_capped_in_bytes_not_characters(servers, connect):
    srv = servers.start()
    t = topic()
    heavy = connect(srv, "json", name=HEAVY_NAME)
    watcher = connect(srv, "json", name="watcher")
    watcher.join(t)
    presence_events(watcher, lambda evs: len(joined_ids(evs)) == 1)
    heavy.join(t)

    events = presence_events(watcher, lambda evs: len(joined_ids(evs)) == 1)
    assert [e["name"] for ev in events for e in ev["joined"]] == [HEAVY_NAME_CUT]
    assert len(HEAVY_NAME_CUT.encode()) == 31  # 32 would split an accent

    ref = watcher.new_ref()
    watcher.send("who", t, ref)
    names = sorted(e["name"] for e in json.loads(recv_reply(watcher, ref).body))
    assert names == sorted([HEAVY_NAME_CUT, "watcher"])
    assert all(len(n.encode()) <= 32 for n in names)


def test_presence_events_are_split_into_frames_of_100_entries(servers, connect):
    """150 joins in one batch (a long batch interval, one event loop) arrive as events of
    at most 100 entries, which together list every joiner once."""
    srv = servers.start("--event-loops", "1", "--presence-batch-ms", "2000", "--rate-limit", "0")
    t = topic()
    watcher = connect(srv, "json", name="watcher")
    watcher.join(t)
    presence_events(watcher, lambda evs: len(joined_ids(evs)) == 1)

    joiners = [connect(srv, "json", name=f"j{i}") for i in range(150)]
    for j in joiners:  # pipelined: all within one batch
        j.send("join", t, "j")
    for j in joiners:
        assert j.recv() == Msg("reply", t, "j")

    events = presence_events(watcher, lambda evs: len(joined_ids(evs)) >= 150)
    sizes = [len(ev.get("joined", [])) + len(ev.get("left", [])) for ev in events]
    assert max(sizes) <= 100, sizes
    assert 100 in sizes, f"the 150 joins were not one batch split in two: {sizes}"
    names = sorted(e["name"] for ev in events for e in ev["joined"])
    assert names == sorted(f"j{i}" for i in range(150))
    assert len(set(joined_ids(events))) == 150


# --- who is capped, count tells the size -----------------------------------------------------


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_who_is_capped_and_count_gives_the_true_size(servers, connect, codec):
    srv = servers.start("--who-limit", "5", "--no-presence-events")
    t = topic()
    members = [connect(srv, codec, name=f"m{i}") for i in range(8)]
    for m in members:
        m.join(t)
    asker = members[0]

    who = asker.request("who", t)
    assert who.type == "reply" and who.topic == t, who
    listed = json.loads(who.body)
    assert len(listed) == 5, listed
    assert len({e["id"] for e in listed}) == 5
    assert {e["name"] for e in listed} <= {f"m{i}" for i in range(8)}

    count = asker.request("count", t)
    assert (count.type, count.topic) == ("reply", t), count
    assert json.loads(count.body) == {"count": 8}
    assert json.loads(asker.request("count", topic()).body) == {"count": 0}


def test_who_limit_defaults_to_32(servers, connect):
    """32 entries keep a who reply under 64 times the request (100 answered 94x)."""
    srv = servers.start("--no-presence-events", "--rate-limit", "0")
    t = topic()
    members = [connect(srv, "json", name=f"m{i}") for i in range(33)]
    for m in members:
        m.send("join", t, "j")
    for m in members:
        assert m.recv() == Msg("reply", t, "j")
    assert len(json.loads(members[0].request("who", t).body)) == 32
    assert json.loads(members[0].request("count", t).body) == {"count": 33}


def test_count_without_topic_is_an_error(servers, connect):
    c = connect(servers.start())
    m = c.request("count")
    assert (m.type, m.json_body()) == ("error", {"reason": "missing topic"}), m


# --- the inbound rate limit is on by default --------------------------------------------------


def published_through(srv, connect, n: int) -> int:
    """A publisher pipelines n publishes to a topic with one subscriber; returns how many
    reached the subscriber once the server has handled all of them. (One event loop, so
    that the subscriber's echo cannot overtake deliveries from another loop.)"""
    t = topic()
    sub = connect(srv, "json")
    sub.join(t)
    pub = connect(srv, "json")
    for i in range(n):
        pub.send("publish", t, None, str(i))
    # the barrier: an echo is answered only after everything the publisher sent before it,
    # but it may itself be dropped while the session is over its rate; retry until one
    # comes back (each attempt is a real message, so this is not a sleep)
    while True:
        ref = pub.new_ref()
        pub.send("echo", None, ref)
        try:
            m = pub.recv(timeout=0.5)
        except TimeoutError:
            continue
        assert m == Msg("echo", "", ref), m
        break
    got = sub.sync()
    bodies = [int(m.body) for m in got]
    assert all(m.type == "message" for m in got), got
    assert bodies == sorted(bodies), "what gets through keeps its order"
    return len(got)


def test_rate_limit_is_on_by_default(servers, connect):
    """Pipelining 1,000 publishes gets most of them dropped (100/s, bursts of 200): the
    subscriber receives a fraction, and the server and the others carry on."""
    srv = servers.start("--no-presence-events", "--event-loops", "1")
    delivered = published_through(srv, connect, 1000)
    assert 0 < delivered <= 500, delivered
    # the server still serves everyone
    other = connect(srv, "json")
    other.join(topic())


def test_rate_limit_0_turns_it_off(servers, connect):
    srv = servers.start("--no-presence-events", "--event-loops", "1", "--rate-limit", "0")
    assert published_through(srv, connect, 1000) == 1000


def test_flags_refuse_nonsense():
    for flags in (["--rate-burst", "0"], ["--queue-bytes", "0"], ["--who-limit=-1"],
                  ["--rate-limit=-5"], ["--max-message-size", "0"]):
        p = subprocess.run([str(server_binary()), "--port", "0", *flags], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert p.returncode != 0 and "must be" in p.stderr, (flags, p.returncode, p.stderr)
