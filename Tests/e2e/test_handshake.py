"""The opening handshake (RFC 6455 section 4) and the plain HTTP side of the server."""

import json

import pytest

from wsraw import OP_TEXT, accept_for, build_frame, http_get, new_key, wait_for

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_accept_value_of_the_rfc_example(echo_server, live):
    assert accept_for(RFC_KEY) == RFC_ACCEPT  # the helper itself is right
    c = live.raw(echo_server)
    c.request(key=RFC_KEY)
    r = c.read_response()
    assert r.status == 101
    assert r.header("Sec-WebSocket-Accept") == RFC_ACCEPT
    assert r.header("Upgrade").lower() == "websocket"
    assert "upgrade" in [t.strip().lower() for t in r.header("Connection").split(",")]
    assert r.header("Sec-WebSocket-Protocol") is None
    assert r.header("Sec-WebSocket-Extensions") is None  # none offered, none agreed


def test_valid_upgrade_then_echo(echo_server, live):
    c = live.raw(echo_server)
    key = new_key()
    c.request(key=key)
    r = c.read_response()
    assert r.status == 101 and r.reason == "Switching Protocols"
    assert r.header("Sec-WebSocket-Accept") == accept_for(key)
    c.send_text("hello")
    assert c.recv_text() == "hello"


@pytest.mark.parametrize(
    "offer, agreed",
    [
        ("live.v1.msgpack, live.v1.json", "live.v1.msgpack"),
        ("live.v1.json, live.v1.msgpack", "live.v1.json"),
        ("foo, live.v1.json", "live.v1.json"),
        ("foo", None),
        ("LIVE.V1.JSON", None),  # names compare case-sensitively
    ],
)
def test_subprotocol_negotiation(live, offer, agreed):
    srv = live.server()
    c = live.raw(srv)
    key = c.request(extra=[("Sec-WebSocket-Protocol", offer)])
    r = c.read_response()
    assert r.status == 101
    assert r.header("Sec-WebSocket-Accept") == accept_for(key)
    assert r.all("Sec-WebSocket-Protocol") == ([agreed] if agreed else [])


def test_subprotocol_offered_over_two_header_lines(live):
    srv = live.server()
    c = live.raw(srv)
    c.request(extra=[("Sec-WebSocket-Protocol", "foo"), ("Sec-WebSocket-Protocol", "live.v1.msgpack")])
    r = c.read_response()
    assert r.status == 101
    assert r.header("Sec-WebSocket-Protocol") == "live.v1.msgpack"


def _reject(live, srv, expect_status, **request_kw):
    c = live.raw(srv)
    c.request(**request_kw)
    r = c.read_response()
    assert r.status == expect_status, (r.status, r.reason, r.body)
    assert r.header("Connection").lower().startswith("close")
    assert int(r.header("Content-Length")) == len(r.body)
    c.expect_eof()  # the server closes the connection after a rejection
    return r


def _std(host="127.0.0.1", key=None, version="13"):
    return [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key or new_key()),
        ("Sec-WebSocket-Version", version),
    ]


BAD_REQUESTS = {
    "missing Host": dict(omit=("Host",)),
    "POST": dict(method="POST"),
    "HTTP/1.0": dict(version="HTTP/1.0"),
    "no Connection header": dict(omit=("Connection",)),
    "Connection without upgrade token": dict(omit=("Connection",), extra=[("Connection", "keep-alive")]),
    "missing key": dict(omit=("Sec-WebSocket-Key",)),
    "key not base64": dict(key="not a valid base64 key!!"),
    "key of 15 bytes": dict(key="AAAAAAAAAAAAAAAAAAAA"),  # 20 chars
    "key of 17 bytes": dict(key="AAAAAAAAAAAAAAAAAAAAAAA="),  # 24 chars but 17 bytes
    "duplicate key": dict(extra=[("Sec-WebSocket-Key", new_key())]),
    "duplicate Host": dict(extra=[("Host", "other.example")]),
    "space before colon": dict(headers=_std() + [("X-Space ", "x")]),
    "obsolete line folding": dict(headers=_std() + [("X-Fold", "a\r\n b")]),
    "control character in value": dict(headers=_std() + [("X-Ctl", "a\x01b")]),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_malformed_upgrade_is_400(echo_server, live, case):
    _reject(live, echo_server, 400, **BAD_REQUESTS[case])


def test_header_line_without_colon_is_400(echo_server, live):
    c = live.raw(echo_server)
    c.send(("GET / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in _std())
            + "NoColonHere\r\n\r\n").encode())
    r = c.read_response()
    assert r.status == 400
    c.expect_eof()


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8"])
def test_unsupported_version_is_426(echo_server, live, version):
    c = live.raw(echo_server)
    c.request(omit=("Sec-WebSocket-Version",), extra=[("Sec-WebSocket-Version", version)])
    r = c.read_response()
    assert r.status == 426, (r.status, r.body)
    assert r.all("Sec-WebSocket-Version") == ["13"]
    c.expect_eof()


def test_missing_version_is_426(echo_server, live):
    r = _reject(live, echo_server, 426, omit=("Sec-WebSocket-Version",))
    assert r.header("Sec-WebSocket-Version") == "13"


def test_unsupported_http_version_is_505(echo_server, live):
    _reject(live, echo_server, 505, version="HTTP/2.0")


def test_head_over_8k_is_431(echo_server, live):
    pad = [(f"X-Pad-{i}", "p" * 100) for i in range(90)]  # ~10 KiB of headers
    _reject(live, echo_server, 431, extra=pad)


def test_head_over_8k_without_end_is_431(echo_server, live):
    """The limit applies before the head is complete: a client that never ends its head
    cannot make the server buffer without bound."""
    c = live.raw(echo_server)
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 9000)
    r = c.read_response()
    assert r.status == 431


def test_head_just_under_limit_is_accepted(echo_server, live):
    c = live.raw(echo_server)
    base = len(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{echo_server.port}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
               "Sec-WebSocket-Version: 13\r\nX-Pad: \r\n\r\n")
    c.upgrade(extra=[("X-Pad", "p" * (8000 - base))])
    c.send_text("still fine")
    assert c.recv_text() == "still fine"


def test_request_in_one_byte_writes(echo_server, live):
    c = live.raw(echo_server)
    key = new_key()
    req = (f"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    for i in range(len(req)):
        c.send(req[i:i + 1])
    r = c.read_response()
    assert r.status == 101
    assert r.header("Sec-WebSocket-Accept") == accept_for(key)
    # frames in one-byte writes too
    frame = build_frame(OP_TEXT, "one byte at a time")
    for i in range(len(frame)):
        c.send(frame[i:i + 1])
    assert c.recv_text() == "one byte at a time"


def test_frames_pipelined_with_the_request(echo_server, live):
    c = live.raw(echo_server)
    key = new_key()
    req = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    c.send(req + build_frame(OP_TEXT, "first") + build_frame(OP_TEXT, "second"))
    r = c.read_response()
    assert r.status == 101 and r.header("Sec-WebSocket-Accept") == accept_for(key)
    assert c.recv_text() == "first"
    assert c.recv_text() == "second"
    c.send_text("third")
    assert c.recv_text() == "third"


def test_partial_frame_pipelined_with_the_request(echo_server, live):
    c = live.raw(echo_server)
    frame = build_frame(OP_TEXT, "split across the upgrade")
    key = c.request()
    # the request is sent; now part of a frame in a second write right behind it is fine
    c.send(frame[:5])
    r = c.read_response()
    assert r.status == 101 and r.header("Sec-WebSocket-Accept") == accept_for(key)
    c.send(frame[5:])
    assert c.recv_text() == "split across the upgrade"


def test_violation_pipelined_with_the_request(echo_server, live):
    c = live.raw(echo_server)
    key = new_key()
    req = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    c.send(req + build_frame(OP_TEXT, "ok") + build_frame(OP_TEXT, "unmasked", mask=False))
    assert c.read_response().status == 101
    assert c.recv_text() == "ok"
    c.expect_close(1002)


def test_reject401_with_body(live):
    srv = live.server()
    r = _reject(live, srv, 401, path="/reject401")
    assert r.body == b"who are you\n"
    assert r.header("Sec-WebSocket-Accept") is None


def test_plain_get_stats_is_json(live):
    srv = live.server()
    r = http_get(srv.port, "/stats")
    assert r.status == 200
    assert r.header("Content-Type") == "application/json"
    st = json.loads(r.body)
    for k in ("connections", "sessions", "subscriptions", "topics", "queued_frames", "queued_bytes",
              "overflows", "skipped", "messages_in", "frames_out", "opened", "closed", "double_closed"):
        assert isinstance(st[k], int), k
    assert st["connections"] == 1  # this request
    assert st["sessions"] == 0


def test_plain_get_unknown_path_is_404(live):
    srv = live.server()
    r = http_get(srv.port, "/nope")
    assert r.status == 404
    assert r.body == b"not found\n"


def test_stats_with_query_string(live):
    srv = live.server()
    r = http_get(srv.port, "/stats?pretty=1")
    assert r.status == 200 and json.loads(r.body)["sessions"] == 0


def test_other_upgrade_protocol_is_plain_http(live):
    """Upgrade: h2c is not a WebSocket attempt: the plain handler answers it."""
    srv = live.server()
    c = live.raw(srv)
    c.send(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    r = c.read_response()
    assert r.status == 200 and json.loads(r.body)["sessions"] == 0


def test_absolute_form_target(live):
    srv = live.server()
    c = live.raw(srv)
    c.upgrade(f"http://127.0.0.1:{srv.port}/chat")
    c.send_text("abs")
    assert c.recv_text() == "abs"


class TestOrigin:
    def test_disallowed_origin_is_403(self, live):
        srv = live.server("--origin", "http://good.example")
        _reject(live, srv, 403, extra=[("Origin", "http://evil.example")])

    def test_missing_origin_passes(self, live):
        """A request without Origin does not come from a browser: it passes the list."""
        srv = live.server("--origin", "http://good.example")
        c = live.ws(srv)
        c.send_text("no origin")
        assert c.recv_text() == "no origin"

    def test_origin_compares_case_insensitively(self, live):
        srv = live.server("--origin", "http://good.example")
        live.ws(srv, extra=[("Origin", "HTTP://Good.Example")])

    def test_empty_origin_is_403(self, live):
        srv = live.server("--origin", "http://good.example")
        _reject(live, srv, 403, extra=[("Origin", "")])

    def test_allowed_origin_is_101(self, live):
        srv = live.server("--origin", "http://good.example")
        c = live.ws(srv, extra=[("Origin", "http://good.example")])
        c.send_text("hi")
        assert c.recv_text() == "hi"

    def test_origin_prefix_is_not_enough(self, live):
        srv = live.server("--origin", "http://good.example")
        _reject(live, srv, 403, extra=[("Origin", "http://good.example.evil.example")])

    def test_duplicate_origin_is_400(self, live):
        srv = live.server("--origin", "http://good.example")
        _reject(live, srv, 400, extra=[("Origin", "http://good.example"), ("Origin", "http://evil.example")])

    def test_no_list_allows_any_origin(self, live):
        srv = live.server()
        live.ws(srv, extra=[("Origin", "http://evil.example")])


def test_max_sessions(live):
    srv = live.server("--max-sessions", 2)
    a = live.ws(srv)
    b = live.ws(srv)
    for c in (a, b):
        c.send_text("open")
        assert c.recv_text() == "open"
    third = live.raw(srv)
    third.request()
    r = third.read_response()
    assert r.status == 503
    third.expect_eof()
    third.close()
    # both sessions still work
    a.send_text("a")
    assert a.recv_text() == "a"
    # once one leaves, a new connection is accepted again (poll: its slot frees when the
    # server sees the FIN)
    b.send_close(1000)
    b.expect_close(1000)
    b.close()

    d = wait_for(lambda: live.upgrade_unless_full(srv), what="a free session slot")
    d.send_text("d")
    assert d.recv_text() == "d"


def _head_of(total: int, key: str) -> bytes:
    base = (f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nX-Pad: ")
    head = (base + "p" * (total - len(base) - 4) + "\r\n\r\n").encode()
    assert len(head) == total
    return head


@pytest.mark.parametrize("split", [None, 100, 8190, 8191], ids=["one write", "100+", "8190+", "8191+"])
@pytest.mark.parametrize("total, status", [(8192, 101), (8193, 431)])
def test_head_size_limit_is_exact(echo_server, live, total, status, split):
    """max_request_head (8 KiB) counts the request line, headers and blank line: 8192
    bytes pass and 8193 do not, however the head is split into writes."""
    c = live.raw(echo_server)
    key = new_key()
    head = _head_of(total, key)
    if split:
        c.send(head[:split])
        c.send(head[split:])
    else:
        c.send(head)
    r = c.read_response()
    assert r.status == status
    if status == 101:
        assert r.header("Sec-WebSocket-Accept") == accept_for(key)


@pytest.mark.parametrize("count, status", [(64, 101), (65, 431)])
def test_header_count_limit(echo_server, live, count, status):
    c = live.raw(echo_server)
    c.request(extra=[(f"X-{i}", "y") for i in range(count - 5)])
    assert c.read_response().status == status


def test_header_names_and_tokens_are_case_insensitive(echo_server, live):
    c = live.raw(echo_server)
    key = new_key()
    c.request(headers=[("host", "x"), ("UPGRADE", "WebSocket"), ("connection", "keep-alive,UPGRADE"),
                       ("sec-websocket-key", key), ("SEC-WEBSOCKET-VERSION", "13")])
    r = c.read_response()
    assert r.status == 101 and r.header("Sec-WebSocket-Accept") == accept_for(key)


def test_whitespace_around_header_values(echo_server, live):
    c = live.raw(echo_server)
    key = new_key()
    c.request(headers=[("Host", "\tx"), ("Upgrade", "websocket\t"), ("Connection", " Upgrade "),
                       ("Sec-WebSocket-Key", f"  {key}  "), ("Sec-WebSocket-Version", "13 ")])
    r = c.read_response()
    assert r.status == 101 and r.header("Sec-WebSocket-Accept") == accept_for(key)


def test_empty_line_before_the_request_line(echo_server, live):
    """RFC 9112 2.2: a server should ignore at least one empty line before the request."""
    c = live.raw(echo_server)
    c.send(b"\r\n")
    c.upgrade()
    c.send_text("ok")
    assert c.recv_text() == "ok"


def test_several_empty_lines_before_the_request_line(echo_server, live):
    """Regression: two leading CRLFs used to be taken for the end of an (empty) head and
    answered 400."""
    c = live.raw(echo_server)
    c.send(b"\r\n\r\n\r\n")
    c.upgrade()
    c.send_text("ok")
    assert c.recv_text() == "ok"


@pytest.mark.parametrize("pieces", [[b"\r", b"\n\r\n"], [b"\r\n\r", b"\n\r\n"], [b"\r", b"\n", b"\r\n"]],
                         ids=["CR|LF CRLF", "CRLF CR|LF CRLF", "CR|LF|CRLF"])
def test_empty_lines_before_the_request_line_in_pieces(live, pieces):
    """Regression: leading CRLFs were stripped only while nothing had been scanned, so once
    a lone CR was read, two leading CRLFs arriving in pieces were taken for the end of the
    head (400 'incomplete request head'). With one loop, a /stats round trip after each
    piece guarantees the server has read it before the next one is sent."""
    srv = live.server("--loops", 1)
    c = live.raw(srv)
    for p in pieces:
        c.send(p)
        srv.stats()
    c.upgrade()


def test_bare_lf_head_is_not_a_head(live):
    """A head ended by bare LFs is never complete: the handshake deadline ends it."""
    srv = live.server("--handshake-ms", 300)
    c = live.raw(srv)
    c.send(f"GET / HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: Upgrade\n"
           f"Sec-WebSocket-Key: {new_key()}\nSec-WebSocket-Version: 13\n\n".encode())
    c.expect_abort()
