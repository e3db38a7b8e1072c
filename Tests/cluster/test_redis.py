"""Scale-out through Redis (issue 13): live-server nodes on one real redis-server.

"Exactly once" is checked without waiting for silence: after the messages under test,
each publisher sends a marker. Each node publishes to Redis in order on one connection and
Redis hands a node's publishes to another node in the order it received them, so a
subscriber that has every publisher's marker has everything they sent before it; a
duplicate would have come before the marker too.
"""

from __future__ import annotations

import json
import time
import uuid

from liveproto import Client, mp_encode

PER_PUBLISHER = 30


def topic() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


def client(cluster, node, codec="json"):
    c = Client(node.ws, codec)
    cluster.defer(c.close)
    return c


def ask(c, type, t):
    """The body of the reply to a who or count, past the presence events that may come first."""
    ref = c.new_ref()
    c.send(type, t, ref, None)
    while True:
        m = c.recv()
        if m.ref == ref:
            assert m.type == "reply", m
            return json.loads(m.body)


def publish(c, t, body: dict):
    c.send("publish", t, None, json.dumps(body) if c.wire == "json" else json.dumps(body).encode())


def messages_until_markers(c, t, markers: set[str]) -> list[dict]:
    """The bodies of the messages published to t that c receives before every marker in
    `markers` has arrived (presence events skipped)."""
    got, seen = [], set()
    while seen != markers:
        m = c.recv()
        if m.type != "message" or m.topic != t:
            continue
        body = json.loads(m.body)
        if "marker" in body:
            assert body["marker"] not in seen, f"marker {body['marker']} twice"
            seen.add(body["marker"])
        else:
            got.append(body)
    return got


def test_every_publish_reaches_every_subscriber_on_every_node_once_in_order(cluster):
    nodes = [cluster.node() for _ in range(3)]
    cluster.wait_connected(*nodes)
    t = topic()
    # two subscribers per node, one JSON and one MessagePack, spread so that each codec
    # is on every node; the JSON one of each node publishes
    subs = []
    for n in nodes:
        for codec in ("json", "msgpack"):
            c = client(cluster, n, codec)
            c.join(t)
            subs.append(c)
    cluster.wait_subscribed(t, 3)
    publishers = [subs[0], subs[2], subs[4]]
    for k in range(PER_PUBLISHER):
        for p, pub in enumerate(publishers):
            publish(pub, t, {"from": p, "n": k})
    for p, pub in enumerate(publishers):
        publish(pub, t, {"marker": str(p)})
    everyone = None
    for i, c in enumerate(subs):
        got = messages_until_markers(c, t, {"0", "1", "2"})
        assert len(got) == 3 * PER_PUBLISHER, f"subscriber {i} got {len(got)} messages"
        for p in range(3):
            assert [b["n"] for b in got if b["from"] == p] == list(range(PER_PUBLISHER)), \
                f"subscriber {i}: publisher {p}'s messages out of order or missing"
        # JSON and MessagePack subscribers on any node got the same messages
        assert everyone is None or sorted(map(str, got)) == everyone
        everyone = sorted(map(str, got))
    for n in nodes:
        status, h = cluster.health(n)
        assert status == 200 and h["redis_malformed"] == "0", h


def test_ten_thousand_topics_on_one_node(cluster):
    a = cluster.node("--max-topics-per-session", 10000)
    b = cluster.node()
    cluster.wait_connected(a, b)
    c = client(cluster, a)
    names = [f"many-{i}" for i in range(10000)]
    for i, name in enumerate(names):  # pipelined: the replies are read afterwards
        c.send("join", name, f"j{i}", None)
    replies = 0
    while replies < len(names):
        m = c.recv()
        assert m.type in ("reply", "presence"), m
        replies += m.type == "reply"
    cluster.wait_until("10,000 channels at Redis",
                       lambda: cluster.health(a)[1]["redis_topics"] == "10000"
                       and len(cluster.redis.cli("PUBSUB", "SHARDCHANNELS" if cluster.sharded() else "CHANNELS",
                                                 "live:many-*").split()) == 10000)
    # a publish on another node reaches the node through the last of them
    publisher = client(cluster, b)
    publish(publisher, names[-1], {"marker": "last"})
    assert messages_until_markers(c, names[-1], {"last"}) == []
    # and the node unsubscribes from all of them when its subscriber leaves
    c.close()
    cluster.wait_until("no channels left", lambda: cluster.subscribers(names[0]) == 0
                       and cluster.health(a)[1]["redis_topics"] == "0")


def test_redis_restart_local_delivery_never_stops_and_cross_node_delivery_resumes(cluster):
    a = cluster.node()
    b = cluster.node("--redis-unhealthy-after", 1)
    cluster.wait_connected(a, b)
    t = topic()
    on_a, on_b = client(cluster, a), client(cluster, b)
    on_a.join(t)
    on_b.join(t)
    cluster.wait_subscribed(t, 2)
    publish(on_a, t, {"marker": "before"})
    assert messages_until_markers(on_b, t, {"before"}) == []
    assert messages_until_markers(on_a, t, {"before"}) == []

    cluster.redis.kill()
    cluster.wait_until("a sees Redis gone", lambda: not cluster.health(a)[1]["redis"].startswith("connected"))
    for k in range(20):  # local delivery goes on, every time
        publish(on_a, t, {"marker": f"down-{k}"})
        assert messages_until_markers(on_a, t, {f"down-{k}"}) == []
    # b was told to be drained once cut off for a second
    cluster.wait_until("b unhealthy", lambda: cluster.health(b)[0] == 503)
    assert cluster.health(a)[0] == 200  # a keeps serving: the default

    cluster.redis.start()  # the same port
    cluster.wait_connected(a, b)
    cluster.wait_subscribed(t, 2)  # subscribed again, without any client doing anything
    assert cluster.health(b)[0] == 200
    publish(on_a, t, {"marker": "after"})
    got = messages_until_markers(on_b, t, {"after"})
    assert got == []  # nothing published while Redis was away arrives late
    publish(on_b, t, {"marker": "back"})
    assert messages_until_markers(on_a, t, {"after", "back"}) == []

    for n in (a, b):
        log = n.stderr()
        assert log.count("unavailable") == 1, log  # once per outage, not per message
        assert log.count("is back after") == 1, log
        _, h = cluster.health(n)
        assert h["redis_outages"] == "1", h
    assert int(cluster.health(a)[1]["redis_dropped_while_down"]) >= 20
    # the restarted Redis had no presence entries: each node wrote its own again
    cluster.wait_until("who across nodes again", lambda: ask(on_a, "count", t)["count"] == 2)


def test_a_killed_node_does_not_stop_the_others(cluster):
    nodes = [cluster.node() for _ in range(3)]
    cluster.wait_connected(*nodes)
    t = topic()
    subs = [client(cluster, n) for n in nodes]
    for c in subs:
        c.join(t)
    cluster.wait_subscribed(t, 3)
    nodes[2].kill()
    cluster.wait_until("the dead node's subscription gone", lambda: cluster.subscribers(t) == 2)
    publish(subs[0], t, {"marker": "x"})
    publish(subs[1], t, {"marker": "y"})
    for c in subs[:2]:
        assert messages_until_markers(c, t, {"x", "y"}) == []


def test_malformed_or_foreign_envelopes_are_dropped_and_counted(cluster):
    a, b = cluster.node(), cluster.node()
    cluster.wait_connected(a, b)
    t = topic()
    victim = client(cluster, a)
    victim.join(t)
    cluster.wait_subscribed(t, 1)
    foreign = [
        "hello",  # not MessagePack
        b"\x96\xa5live2\xa1x\xa7message\xa1t\xa0\xc4\x00",  # another format version
        mp_encode("message", t, None, b'{"x":1}'),  # a client frame, not an envelope
        b"\x96\xa5live1\xa1x\xa7message" + bytes([0xa0 | len(t)]) + t.encode() + b"\xa0\xc4\x10",  # truncated body
        b"\x96\xa5live1\xa1x\xa7message\xa5other\xa0\xc4\x02{}",  # for another topic
        b"\x96\xa5live1\xa0\xa7message" + bytes([0xa0 | len(t)]) + t.encode() + b"\xa0\xc4\x02{}",  # no origin
    ]
    for payload in foreign:
        cluster.publish_raw(t, payload)
    # a real message from another node after them: the first thing the victim sees
    publisher = client(cluster, b)
    publish(publisher, t, {"marker": "real"})
    assert messages_until_markers(victim, t, {"real"}) == []
    status, h = cluster.health(a)
    assert status == 200 and h["redis_malformed"] == str(len(foreign)), h


def test_presence_events_cross_nodes_with_ids_unique_across_nodes(cluster):
    a, b = cluster.node(name="alpha"), cluster.node(name="beta")
    cluster.wait_connected(a, b)
    t = topic()
    first = Client(a.ws + "?name=ada", "json")
    cluster.defer(first.close)
    first.join(t)
    cluster.wait_subscribed(t, 1)
    second = Client(b.ws + "?name=bob", "msgpack")
    cluster.defer(second.close)
    second.join(t)
    # b's join event reaches a's member; ids carry their node's id, so a session 1 on
    # each node cannot be confused
    while True:
        m = first.recv()
        if m.type == "presence" and b"bob" in m.body:
            break
    joined = json.loads(m.body)["joined"]
    assert [(e["id"].split("-")[0], e["name"]) for e in joined] == [("beta", "bob")], joined
    # who and count see the members of every node
    everyone = ask(first, "who", t)
    assert sorted((e["id"].split("-")[0], e["name"]) for e in everyone) == [("alpha", "ada"), ("beta", "bob")]
    assert ask(first, "count", t) == {"count": 2}
    # a join on alpha reaches beta's MessagePack member as a native map, as it would on alpha
    third = Client(a.ws + "?name=cy", "json")
    cluster.defer(third.close)
    third.join(t)
    while True:
        m = second.recv()
        if m.type == "presence" and b"cy" in m.body:
            break
    assert m.native and json.loads(m.body)["joined"][0]["name"] == "cy", m
    second.close()
    while True:
        m = first.recv()
        if m.type == "presence" and b"left" in m.body:
            break
    assert json.loads(m.body)["left"] == [joined[0]["id"]]
    third.close()


def test_a_killed_nodes_members_expire_within_the_ttl(cluster):
    ttl = 2.0
    a = cluster.node("--redis-presence-ttl", ttl, name="alive")
    b = cluster.node("--redis-presence-ttl", ttl, name="doomed")
    cluster.wait_connected(a, b)
    t = topic()
    watcher = client(cluster, a)
    watcher.join(t)
    ghosts = [client(cluster, b) for _ in range(3)]
    for g in ghosts:
        g.join(t)
    count = lambda: ask(watcher, "count", t)["count"]  # noqa: E731
    cluster.wait_until("4 members seen from a", lambda: count() == 4)
    b.kill()
    killed = time.monotonic()
    cluster.wait_until("the killed node's members gone", lambda: count() == 1, timeout=ttl * 5)
    gone_after = time.monotonic() - killed
    print(f"a SIGKILLed node's members disappeared {gone_after:.2f} s after the kill (TTL {ttl} s)")
    assert gone_after <= ttl + 1.0, gone_after  # the TTL, and a second of slack for a loaded machine
    assert [e["id"].split("-")[0] for e in ask(watcher, "who", t)] == ["alive"]


def test_password_from_the_environment_and_a_database(cluster, tmp_path, monkeypatch):
    from redisproc import Redis
    secret = Redis(tmp_path / "redis-auth.log", extra=("--requirepass", "s3cret"))
    cluster.defer(secret.stop)
    url = f"redis://127.0.0.1:{secret.port}/3"
    monkeypatch.setenv("LIVE_REDIS_PASSWORD", "s3cret")
    a = cluster.node("--redis", url, name="with-password")  # the later --redis wins
    cluster.wait_connected(a)
    t = topic()
    c = client(cluster, a)
    c.join(t)
    cluster.wait_until("subscribed with AUTH", lambda: secret.cli("PUBSUB", "SHARDNUMSUB", f"live:{t}").split()[1:] == ["1"])
    # presence went to database 3
    cluster.wait_until("presence in db 3", lambda: secret.cli("-n", "3", "EXISTS", f"live:pn:{{{t}}}").strip() == "1")
    monkeypatch.setenv("LIVE_REDIS_PASSWORD", "wrong")
    b = cluster.node("--redis", url, name="wrong-password")
    cluster.wait_until("refused, said once", lambda: "AUTH" in b.stderr())
    assert not cluster.health(b)[1]["redis"].startswith("connected")
    assert cluster.health(b)[0] == 200  # still serving its own clients


def test_a_bad_redis_url_is_refused_at_start(tmp_path):
    import subprocess
    from liveserver import server_binary
    out = subprocess.run([str(server_binary()), "--port", "0", "--redis", "http://127.0.0.1:6379"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 64 and "--redis http://127.0.0.1:6379: must start with redis://" in out.stderr, out


def redis_answers(port: int, within: float) -> bool:
    """Whether Redis answers a PING within `within` seconds."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"PING\r\n")
        s.settimeout(within)
        try:
            return s.recv(16).startswith(b"+PONG")
        except TimeoutError:
            return False


def test_a_stalled_redis_stalls_no_event_loop(cluster):
    import subprocess
    a, b = cluster.node("--redis-queue-bytes", 4096), cluster.node()
    cluster.wait_connected(a, b)
    t = topic()
    on_a, on_b = client(cluster, a), client(cluster, b)
    on_a.join(t)
    on_b.join(t)
    cluster.wait_subscribed(t, 2)
    # asleep long enough for a loaded CI machine to do the publishes below meanwhile
    sleeper = subprocess.Popen(["redis-cli", "-p", str(cluster.redis.port), "DEBUG", "SLEEP", "10"],
                               stdout=subprocess.DEVNULL)
    cluster.defer(sleeper.wait)
    cluster.wait_until("Redis asleep", lambda: not redis_answers(cluster.redis.port, 0.2))
    for k in range(50):  # each one delivered locally at once, Redis asleep or not
        publish(on_a, t, {"marker": f"m{k}"})
        assert messages_until_markers(on_a, t, {f"m{k}"}) == []
    # a's queue towards Redis is 4 KiB: what did not fit was dropped and counted. The
    # kernel's buffers between a and the sleeping Redis take megabytes first (they are not
    # the node's queue), so the big publishes carry 12 MB in all.
    big = "x" * 400_000
    for k in range(30):
        publish(on_a, t, {"marker": f"big{k}", "pad": big})
        assert messages_until_markers(on_a, t, {f"big{k}"}) == []
    assert not redis_answers(cluster.redis.port, 0.05), "Redis woke up before the test was done"
    assert int(cluster.health(a)[1]["redis_dropped_queue_full"]) > 0
    # what was queued reaches b once Redis wakes, in order; the rest never does
    publish(on_a, t, {"marker": "end"})
    got = []
    while True:
        m = on_b.recv()
        if m.type == "message":
            body = json.loads(m.body)
            got.append(body["marker"])
            if body["marker"] == "end":
                break
    small = [g for g in got if g.startswith("m")]
    assert small == [f"m{k}" for k in range(len(small))] and len(got) < 81, got
