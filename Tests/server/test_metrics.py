"""live-server's GET /metrics (Prometheus text through swift-prometheus, issue 15): on by
default on the main port, on a port of its own with --metrics-port, gone with --no-metrics;
its counters follow the traffic."""

from __future__ import annotations

import re
import socket
import uuid

from liveproto import Client, Msg, http_get

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')


def scrape(base: str) -> dict[str, float]:
    """The samples of GET /metrics by name and labels, e.g. 'live_sessions_closed_total{reason="..."}'."""
    status, headers, body = http_get(f"{base}/metrics")
    assert status == 200, (status, body)
    assert headers["Content-Type"].startswith("text/plain"), headers
    samples = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples


def upgrade_status(port: int, path: str) -> int:
    """The status a WebSocket upgrade request to path gets."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            assert chunk, head
            head += chunk
    return int(head.split(b" ", 2)[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_publish_to_three_subscribers_adds_three_deliveries(servers):
    srv = servers.start("--rate-limit", 0, "--no-presence-events")  # presence events are deliveries too
    t = f"room:{uuid.uuid4().hex[:8]}"
    subs = [Client(srv.ws, "json") for _ in range(3)]
    pub = Client(srv.ws, "json")
    for c in subs + [pub]:
        servers.defer(c.close)
    for c in subs:
        c.join(t)
    before = scrape(srv.http)
    assert before["live_sessions"] == 4
    assert before["live_sessions_opened_total"] >= 4
    pub.send("publish", t, "p1", '{"n":1}')
    assert pub.recv() == Msg("reply", t, "p1")
    for c in subs:
        assert c.recv().type == "message"
    after = scrape(srv.http)
    assert after["live_deliveries_total"] - before.get("live_deliveries_total", 0) == 3
    assert after["live_messages_published_total"] - before.get("live_messages_published_total", 0) == 1
    # the publish message itself, received from the publisher
    assert after["live_messages_received_total"] - before["live_messages_received_total"] == 1
    assert after["live_bytes_written_total"] > before["live_bytes_written_total"]
    # the publish was timed on the loops that hold a subscriber: a histogram that adds up
    assert after["live_publish_queued_seconds_count"] >= 1
    assert after['live_publish_queued_seconds_bucket{le="+Inf"}'] == after["live_publish_queued_seconds_count"]
    assert after["live_publish_queued_seconds_sum"] > 0
    assert after["live_subscriptions"] == 3


def test_closes_are_counted_by_reason_and_refusals_by_status(servers):
    srv = servers.start()
    c = Client(srv.ws, "json")
    c.close()  # a close frame from the client
    assert upgrade_status(srv.port, "/not-the-endpoint") == 404  # onAuth refuses upgrades off /ws
    # the close is counted once the server has seen it: poll the scrape, an observable
    for _ in range(500):
        m = scrape(srv.http)
        if m.get('live_sessions_closed_total{reason="client_closed"}') == 1:
            break
    assert m['live_sessions_closed_total{reason="client_closed"}'] == 1
    assert m['live_upgrades_rejected_total{status="404"}'] == 1
    assert m["live_handshake_seconds_count"] >= 1
    assert m["live_auth_seconds_count"] >= 2


def test_metrics_on_a_port_of_their_own(servers):
    port = free_port()
    srv = servers.start("--metrics-port", port)
    status, _, _ = http_get(f"{srv.http}/metrics")
    assert status == 404  # not on the main port any more
    c = Client(srv.ws, "json")
    servers.defer(c.close)
    m = scrape(f"http://127.0.0.1:{port}")
    assert m["live_sessions"] == 1


def test_no_metrics_turns_the_endpoint_off(servers):
    srv = servers.start("--no-metrics")
    status, _, _ = http_get(f"{srv.http}/metrics")
    assert status == 404
