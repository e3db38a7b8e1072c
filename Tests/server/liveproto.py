"""The Live wire formats, by hand, for the live-server tests (docs/PROTOCOL.md).

A message is a `Msg(type, topic, ref, body)` with `body` as bytes: under JSON the exact
bytes of the body's JSON value as it appears in the frame (the server splices bodies
verbatim, so a test can compare bytes); under MessagePack the bytes of the `bin` (or
`str`) element, or, for a body the server wrote itself (presence events, replies, errors),
which MessagePack carries natively as a map or an array, that value as compact JSON with
`native` set.

`Client` is a thin blocking client over `websockets.sync`: every receive has a deadline
(a `TimeoutError` is a test failure, never a silent pass), and `Client.sync()` is the
ordering barrier the tests use instead of sleeps: it sends an `echo` with a fresh ref and
returns every frame that arrived before the echo came back.
"""

from __future__ import annotations

import itertools
import json

import msgpack
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass

from websockets.sync.client import ClientConnection, connect

JSON = "live.v1.json"
MSGPACK = "live.v1.msgpack"
CODECS = {"json": JSON, "msgpack": MSGPACK}

RECV_TIMEOUT = 10.0  # an upper bound for a loaded CI machine, never an assertion about speed


@dataclass(frozen=True)
class Msg:
    type: str
    topic: str = ""
    ref: str = ""
    body: bytes = b""
    native: bool = False  # MessagePack: the body came as a native value, not bin

    def json_body(self):
        """The body parsed as JSON (error bodies are JSON under every codec)."""
        return json.loads(self.body)


# --- MessagePack --------------------------------------------------------------------------


def mp_str(s: str | None) -> bytes:
    if s is None:
        return b"\xc0"
    b = s.encode("utf-8")
    n = len(b)
    if n < 32:
        return bytes([0xA0 | n]) + b
    if n < 0x100:
        return b"\xd9" + bytes([n]) + b
    if n < 0x10000:
        return b"\xda" + struct.pack(">H", n) + b
    return b"\xdb" + struct.pack(">I", n) + b


def mp_bin(b: bytes | None) -> bytes:
    if b is None:
        return b"\xc0"
    n = len(b)
    if n < 0x100:
        return b"\xc4" + bytes([n]) + b
    if n < 0x10000:
        return b"\xc5" + struct.pack(">H", n) + b
    return b"\xc6" + struct.pack(">I", n) + b


def mp_encode(type: str, topic: str | None = None, ref: str | None = None, body: bytes | None = None) -> bytes:
    """[type, topic, ref, body] with nil for absent fields."""
    return b"\x94" + mp_str(type) + mp_str(topic) + mp_str(ref) + mp_bin(body)


def mp_decode(frame: bytes) -> Msg:
    """Decodes a server frame: an array of 4 of nil / str / bin. Anything else is an error."""
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(frame):
            raise ValueError(f"truncated MessagePack frame {frame!r}")
        out = frame[pos:pos + n]
        pos += n
        return out

    head = take(1)[0]
    if head == 0x94:
        count = 4
    elif head == 0xDC:
        count = struct.unpack(">H", take(2))[0]
    else:
        raise ValueError(f"not an array header: {head:#x} in {frame!r}")
    if count != 4:
        raise ValueError(f"array of {count}, not 4: {frame!r}")

    def element(last: bool = False):
        t = frame[pos] if pos < len(frame) else None
        if last and t is not None and not (t == 0xC0 or 0xA0 <= t <= 0xBF or t in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6)):
            return native_value()
        t = take(1)[0]
        if t == 0xC0:
            return None
        if 0xA0 <= t <= 0xBF:
            return take(t & 0x1F)
        if t in (0xD9, 0xC4):
            return take(take(1)[0])
        if t in (0xDA, 0xC5):
            return take(struct.unpack(">H", take(2))[0])
        if t in (0xDB, 0xC6):
            return take(struct.unpack(">I", take(4))[0])
        raise ValueError(f"unexpected MessagePack type byte {t:#x} in {frame!r}")

    def native_value():
        nonlocal pos
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        unpacker.feed(frame[pos:])
        value = unpacker.unpack()
        pos += unpacker.tell()
        return NativeBody(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())

    fields = [element() for _ in range(3)] + [element(last=True)]
    if pos != len(frame):
        raise ValueError(f"{len(frame) - pos} trailing bytes in {frame!r}")
    type_, topic, ref, body = fields
    native = isinstance(body, NativeBody)
    return Msg((type_ or b"").decode(), (topic or b"").decode(), (ref or b"").decode(),
               bytes(body) if native else (body or b""), native)


class NativeBody(bytes):
    """A MessagePack body that came as a native value (kept as compact JSON)."""


# --- JSON ---------------------------------------------------------------------------------


def json_encode(type: str, topic: str | None = None, ref: str | None = None, body: bytes | str | None = None) -> str:
    """A JSON frame; `body` is raw JSON text spliced verbatim (so whitespace is kept)."""
    parts = [f'"type":{json.dumps(type)}']
    if topic is not None:
        parts.append(f'"topic":{json.dumps(topic)}')
    if ref is not None:
        parts.append(f'"ref":{json.dumps(ref)}')
    if body is not None:
        raw = body.decode() if isinstance(body, bytes) else body
        parts.append(f'"body":{raw}')
    return "{" + ",".join(parts) + "}"


_decoder = json.JSONDecoder()
_WS = " \t\r\n"


def json_decode(text: str) -> Msg:
    """Decodes a server frame, keeping the raw text of each top-level value (so the body's
    exact bytes can be compared)."""
    raw: dict[str, str] = {}
    i = 0

    def skip():
        nonlocal i
        while i < len(text) and text[i] in _WS:
            i += 1

    skip()
    if text[i:i + 1] != "{":
        raise ValueError(f"not a JSON object: {text!r}")
    i += 1
    skip()
    if text[i:i + 1] == "}":
        i += 1
    else:
        while True:
            skip()
            key, i = _decoder.raw_decode(text, i)
            if not isinstance(key, str):
                raise ValueError(f"bad key in {text!r}")
            skip()
            if text[i:i + 1] != ":":
                raise ValueError(f"expected ':' at {i} in {text!r}")
            i += 1
            skip()
            start = i
            _, i = _decoder.raw_decode(text, i)
            if key in raw:
                raise ValueError(f"duplicate key {key!r} in {text!r}")
            raw[key] = text[start:i]
            skip()
            c = text[i:i + 1]
            i += 1
            if c == "}":
                break
            if c != ",":
                raise ValueError(f"expected ',' or '}}' at {i - 1} in {text!r}")
    skip()
    if i != len(text):
        raise ValueError(f"trailing text in {text!r}")

    def s(key):
        if key not in raw:
            return ""
        v = json.loads(raw[key])
        if not isinstance(v, str):
            raise ValueError(f"{key} is not a string in {text!r}")
        return v

    if "type" not in raw:
        raise ValueError(f"no type in {text!r}")
    return Msg(s("type"), s("topic"), s("ref"), raw.get("body", "").encode())


# --- a client -----------------------------------------------------------------------------


def open_ws(url: str, **kw) -> ClientConnection:
    kw.setdefault("proxy", None)
    kw.setdefault("compression", None)
    kw.setdefault("open_timeout", RECV_TIMEOUT)
    kw.setdefault("close_timeout", 5)
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_size", None)
    # entering the connection marks it as managed (websockets 17 warns otherwise); the
    # callers close it themselves
    return connect(url, **kw).__enter__()


class Client:
    """One session. `codec` is "json" or "msgpack" (the subprotocol asked for), or None to
    ask for none; `wire` then says how frames are read (the server's default codec)."""

    _refs = itertools.count(1)

    def __init__(self, ws_url: str, codec: str | None = "json", *, name: str | None = None,
                 wire: str | None = None, **kw):
        url = ws_url if name is None else f"{ws_url}?name={name}"
        self.codec = codec
        self.wire = wire or codec or "json"
        subprotocols = [CODECS[codec]] if codec else None
        self.ws = open_ws(url, subprotocols=subprotocols, **kw)

    @property
    def subprotocol(self):
        return self.ws.subprotocol

    def new_ref(self) -> str:
        return f"r{next(self._refs)}"

    def send(self, type: str, topic: str | None = None, ref: str | None = None, body=None):
        """body: JSON text / bytes under JSON; bytes under MessagePack."""
        if self.wire == "json":
            self.ws.send(json_encode(type, topic, ref, body))
        else:
            if isinstance(body, str):
                body = body.encode()
            self.ws.send(mp_encode(type, topic, ref, body))

    def recv_frame(self, timeout: float = RECV_TIMEOUT):
        return self.ws.recv(timeout=timeout)

    def recv(self, timeout: float = RECV_TIMEOUT) -> Msg:
        frame = self.recv_frame(timeout)
        if self.wire == "json":
            assert isinstance(frame, str), f"a JSON session got a binary frame {frame!r}"
            return json_decode(frame)
        assert isinstance(frame, bytes), f"a MessagePack session got a text frame {frame!r}"
        return mp_decode(frame)

    def request(self, type: str, topic: str | None = None, body=None) -> Msg:
        """Sends with a fresh ref and returns the reply or error for it; any other message
        that arrives first fails the test (use it only when nothing else is expected)."""
        ref = self.new_ref()
        self.send(type, topic, ref, body)
        m = self.recv()
        assert m.ref == ref, f"expected the answer to ref {ref}, got {m}"
        return m

    def join(self, topic: str):
        m = self.request("join", topic)
        assert m == Msg("reply", topic, m.ref), m

    def sync(self) -> list[Msg]:
        """The ordering barrier: echoes a fresh ref and returns what arrived before it."""
        ref = self.new_ref()
        self.send("echo", None, ref, None)
        before = []
        while True:
            m = self.recv()
            if m.type == "echo" and m.ref == ref:
                return before
            before.append(m)

    def close(self):
        self.ws.close()


def http_get(url: str, method: str = "GET", headers: dict | None = None):
    """(status, headers, body) of a plain HTTP request, without any proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=RECV_TIMEOUT) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
