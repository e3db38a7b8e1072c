"""RFC 6455 framing: every violation closes with the right code, then TCP closes; control
frames, fragmentation and the closing handshake behave."""

import os
import struct

import pytest

from wsraw import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, build_frame,
                   close_payload)


def frames(*fs):
    return b"".join(fs)


# Each case: the bytes a client sends after a valid upgrade, and the close code expected.
VIOLATIONS = {
    "unmasked text": (build_frame(OP_TEXT, "hi", mask=False), 1002),
    "unmasked empty ping": (build_frame(OP_PING, b"", mask=False), 1002),
    "RSV1": (build_frame(OP_TEXT, "hi", rsv=4), 1002),
    "RSV2": (build_frame(OP_TEXT, "hi", rsv=2), 1002),
    "RSV3": (build_frame(OP_BINARY, b"hi", rsv=1), 1002),
    "RSV1 on a ping": (build_frame(OP_PING, b"", rsv=4), 1002),
    "opcode 3": (build_frame(0x3, b"x"), 1002),
    "opcode 7": (build_frame(0x7, b"x"), 1002),
    "opcode 0xB": (build_frame(0xB, b"x"), 1002),
    "opcode 0xF": (build_frame(0xF, b""), 1002),
    "fragmented ping": (build_frame(OP_PING, b"a", fin=False), 1002),
    "fragmented close": (build_frame(OP_CLOSE, close_payload(1000), fin=False), 1002),
    "ping of 126 bytes": (build_frame(OP_PING, b"p" * 126), 1002),
    "pong of 126 bytes": (build_frame(OP_PONG, b"p" * 126), 1002),
    "close of 126 bytes": (build_frame(OP_CLOSE, close_payload(1000, "r" * 124)), 1002),
    "ping with a 16-bit length of 5": (build_frame(OP_PING, b"12345", length_form=16), 1002),
    "continuation without start": (build_frame(OP_CONT, "x"), 1002),
    "final continuation without start": (build_frame(OP_CONT, "x", fin=True), 1002),
    "text inside a fragmented message": (
        build_frame(OP_TEXT, "a", fin=False) + build_frame(OP_TEXT, "b"), 1002),
    "binary inside a fragmented text": (
        build_frame(OP_TEXT, "a", fin=False) + build_frame(OP_BINARY, b"b"), 1002),
    "64-bit length with MSB set": (build_frame(OP_BINARY, b"", length=1 << 63, length_form=64), 1002),
    "64-bit length all ones": (build_frame(OP_BINARY, b"", length=(1 << 64) - 1, length_form=64), 1002),
    "16-bit length under 126": (build_frame(OP_TEXT, "short", length_form=16), 1002),
    "64-bit length under 65536": (build_frame(OP_BINARY, b"x" * 200, length_form=64), 1002),
    "close with 1-byte payload": (build_frame(OP_CLOSE, b"\x03"), 1002),
    "close code 1005": (build_frame(OP_CLOSE, close_payload(1005)), 1002),
    "close code 1006": (build_frame(OP_CLOSE, close_payload(1006)), 1002),
    "close code 1004": (build_frame(OP_CLOSE, close_payload(1004)), 1002),
    "close code 1015": (build_frame(OP_CLOSE, close_payload(1015)), 1002),
    "close code 999": (build_frame(OP_CLOSE, close_payload(999)), 1002),
    "close code 0": (build_frame(OP_CLOSE, close_payload(0)), 1002),
    "close code 1016": (build_frame(OP_CLOSE, close_payload(1016)), 1002),
    "close code 2999": (build_frame(OP_CLOSE, close_payload(2999)), 1002),
    "close code 5000": (build_frame(OP_CLOSE, close_payload(5000)), 1002),
    "close code 65535": (build_frame(OP_CLOSE, close_payload(65535)), 1002),
    "close reason invalid UTF-8": (build_frame(OP_CLOSE, close_payload(1000, b"\xff\xfe")), 1002),
    "close reason truncated UTF-8": (build_frame(OP_CLOSE, close_payload(1000, "é".encode()[:1])), 1002),
    "invalid UTF-8 text": (build_frame(OP_TEXT, b"abc\xffdef"), 1007),
    "overlong UTF-8 text": (build_frame(OP_TEXT, b"\xc0\xaf"), 1007),
    "UTF-16 surrogate in text": (build_frame(OP_TEXT, b"\xed\xa0\x80"), 1007),
    "code point over U+10FFFF": (build_frame(OP_TEXT, b"\xf4\x90\x80\x80"), 1007),
    "text ending inside a character": (build_frame(OP_TEXT, "€".encode()[:2]), 1007),
    "invalid UTF-8 across fragments": (
        build_frame(OP_TEXT, "ok €".encode()[:5], fin=False) + build_frame(OP_CONT, b"A", fin=True), 1007),
    "invalid UTF-8 in the last fragment": (
        build_frame(OP_TEXT, "fine", fin=False) + build_frame(OP_CONT, b"\xff", fin=True), 1007),
    "message ends inside a character across fragments": (
        build_frame(OP_TEXT, "€".encode()[:1], fin=False) + build_frame(OP_CONT, "€".encode()[1:2], fin=True), 1007),
}


@pytest.mark.parametrize("case", list(VIOLATIONS), ids=list(VIOLATIONS))
def test_violation_closes_with_code(echo_server, live, case):
    data, code = VIOLATIONS[case]
    c = live.ws(echo_server)
    c.send(data)
    c.expect_close(code)


@pytest.mark.parametrize("case", ["unmasked text", "RSV1", "opcode 0xB", "invalid UTF-8 text"])
def test_violation_after_valid_traffic(echo_server, live, case):
    """Messages before the violation are delivered; nothing after it is."""
    data, code = VIOLATIONS[case]
    c = live.ws(echo_server)
    c.send(build_frame(OP_TEXT, "before") + data + build_frame(OP_TEXT, "after"))
    assert c.recv_text() == "before"
    c.expect_close(code)


@pytest.mark.parametrize("case", ["unmasked text", "opcode 3", "64-bit length with MSB set"])
def test_violation_in_one_byte_writes(echo_server, live, case):
    """A header assembled across reads is checked the same way."""
    data, code = VIOLATIONS[case]
    c = live.ws(echo_server)
    for i in range(len(data)):
        c.send(data[i:i + 1])
    c.expect_close(code)


def test_invalid_utf8_fails_fast(echo_server, live):
    """The header of a 1 MB text frame followed by a few bytes, the first of them not
    UTF-8: 1007 comes without the rest of the frame."""
    c = live.ws(echo_server)
    key = os.urandom(4)
    frame = build_frame(OP_TEXT, b"\xff" + b"a" * 15, length=1_000_000, key=key)
    c.send(frame)
    c.expect_close(1007)


def test_invalid_utf8_fails_fast_mid_frame(echo_server, live):
    """Valid text, then an impossible byte, inside a frame whose rest never comes."""
    c = live.ws(echo_server)
    c.send(build_frame(OP_TEXT, b"a" * 5000 + b"\xc3\x28", length=1_000_000))
    c.expect_close(1007)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999])
def test_valid_close_code_is_echoed(echo_server, live, code):
    c = live.ws(echo_server)
    c.send_close(code, "why")
    c.expect_close(code, "why")


def test_close_without_payload_is_answered_without_payload(echo_server, live):
    c = live.ws(echo_server)
    c.send_close()
    c.expect_close(None)


def test_client_close_1000_bye(echo_server, live):
    c = live.ws(echo_server)
    c.send_text("x")
    assert c.recv_text() == "x"
    c.send_close(1000, "bye")
    f = c.expect_close(1000, "bye")
    assert f.payload == struct.pack("!H", 1000) + b"bye"


def test_close_with_longest_reason(echo_server, live):
    reason = "é" * 61 + "x"  # 123 bytes
    assert len(reason.encode()) == 123
    c = live.ws(echo_server)
    c.send_close(4000, reason)
    c.expect_close(4000, reason)


def test_nothing_is_read_after_a_close(echo_server, live):
    c = live.ws(echo_server)
    c.send(build_frame(OP_CLOSE, close_payload(1000)) + build_frame(OP_TEXT, "ignored"))
    c.expect_close(1000)


def test_close_split_across_writes(echo_server, live):
    c = live.ws(echo_server)
    f = build_frame(OP_CLOSE, close_payload(3001, "split"))
    c.send(f[:3])
    c.send(f[3:9])
    c.send(f[9:])
    c.expect_close(3001, "split")


# --- control frames ------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"ping!", b"\x00\xff" * 62 + b"!"], ids=["empty", "short", "125 bytes"])
def test_ping_gets_pong_with_same_payload(echo_server, live, payload):
    c = live.ws(echo_server)
    c.send_frame(OP_PING, payload)
    f = c.recv_frame()
    assert f.opcode == OP_PONG and f.fin and not f.masked
    assert f.payload == payload


def test_ping_split_across_writes(echo_server, live):
    c = live.ws(echo_server)
    f = build_frame(OP_PING, b"0123456789" * 10)
    c.send(f[:1])
    c.send(f[1:7])
    c.send(f[7:50])
    c.send(f[50:])
    pong = c.recv_frame()
    assert pong.opcode == OP_PONG and pong.payload == b"0123456789" * 10


def test_unsolicited_pong_is_ignored(echo_server, live):
    c = live.ws(echo_server)
    c.send_frame(OP_PONG, b"unsolicited")
    c.send_frame(OP_PONG, b"")
    c.send_text("still here")
    assert c.recv_text() == "still here"


def test_ping_between_fragments(echo_server, live):
    c = live.ws(echo_server)
    c.send(frames(
        build_frame(OP_TEXT, "Hello, ", fin=False),
        build_frame(OP_PING, b"mid"),
        build_frame(OP_CONT, "fragmented ", fin=False),
        build_frame(OP_PONG, b"ignored"),
        build_frame(OP_CONT, "world", fin=True),
    ))
    pong = c.recv_frame()
    assert pong.opcode == OP_PONG and pong.payload == b"mid"
    assert c.recv_text() == "Hello, fragmented world"


def test_close_between_fragments(echo_server, live):
    """A close in the middle of a message ends the session; the partial message is
    dropped."""
    c = live.ws(echo_server)
    c.send(build_frame(OP_TEXT, "partial", fin=False) + build_frame(OP_CLOSE, close_payload(1000)))
    c.expect_close(1000)


def test_many_pings_all_answered_in_order(echo_server, live):
    c = live.ws(echo_server)
    c.send(b"".join(build_frame(OP_PING, str(i).encode()) for i in range(100)))
    for i in range(100):
        f = c.recv_frame()
        assert f.opcode == OP_PONG and f.payload == str(i).encode()


# --- data frames ---------------------------------------------------------------------


def test_fragmented_binary(echo_server, live):
    c = live.ws(echo_server)
    parts = [os.urandom(n) for n in (0, 1, 1000, 70000, 0, 5)]
    c.send(build_frame(OP_BINARY, parts[0], fin=False)
           + b"".join(build_frame(OP_CONT, p, fin=False) for p in parts[1:-1])
           + build_frame(OP_CONT, parts[-1], fin=True))
    f = c.recv_message()
    assert f.opcode == OP_BINARY and f.payload == b"".join(parts)


def test_utf8_character_split_across_fragments(echo_server, live):
    text = "a€b😀c"
    raw = text.encode()
    c = live.ws(echo_server)
    pieces = [raw[i:i + 1] for i in range(len(raw))]
    c.send(build_frame(OP_TEXT, pieces[0], fin=False)
           + b"".join(build_frame(OP_CONT, p, fin=False) for p in pieces[1:-1])
           + build_frame(OP_CONT, pieces[-1], fin=True))
    assert c.recv_text() == text


def test_empty_messages(echo_server, live):
    c = live.ws(echo_server)
    c.send_text("")
    c.send_binary(b"")
    c.send(build_frame(OP_TEXT, "", fin=False) + build_frame(OP_CONT, "", fin=True))
    a, b, d = c.recv_message(), c.recv_message(), c.recv_message()
    assert (a.opcode, a.payload) == (OP_TEXT, b"")
    assert (b.opcode, b.payload) == (OP_BINARY, b"")
    assert (d.opcode, d.payload) == (OP_TEXT, b"")


@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 300_000])
def test_length_encodings(echo_server, live, size):
    c = live.ws(echo_server)
    data = os.urandom(size)
    c.send_binary(data)
    f = c.recv_message()
    assert f.payload == data
    # the server encodes its frames minimally
    assert len(f.payload) == size


def test_frame_split_at_every_header_boundary(echo_server, live):
    c = live.ws(echo_server)
    f = build_frame(OP_BINARY, b"z" * 70000)  # 14-byte header
    for cut in (1, 2, 5, 9, 10, 13, 14, 15):
        c.send(f[:cut])
        c.send(f[cut:])
        assert c.recv_message().payload == b"z" * 70000


def test_many_small_messages_in_one_write(echo_server, live):
    c = live.ws(echo_server)
    c.send(b"".join(build_frame(OP_TEXT, f"m{i}") for i in range(1000)))
    for i in range(1000):
        assert c.recv_text() == f"m{i}"


@pytest.mark.parametrize("n", [1025, 5000])
def test_burst_of_small_messages_from_a_fast_reader(live, n):
    """Regression: more than queue_size (1024) small messages in one write, from a client
    that reads as fast as it can. Its socket buffers are empty, so it is no slow consumer;
    the core used to queue every echo of one read before writing any and closed it with
    4008 'slow' (dropping all of them)."""
    srv = live.server()
    c = live.ws(srv)
    c.send(b"".join(build_frame(OP_TEXT, f"m{i}") for i in range(n)))
    for i in range(n):
        assert c.recv_text() == f"m{i}"


# --- limits (test server flags) ----------------------------------------------------------


def test_message_at_max_message_passes(live):
    srv = live.server("--max-message", 1000)
    c = live.ws(srv)
    c.send_binary(b"m" * 1000)
    assert c.recv_message().payload == b"m" * 1000
    c.send(build_frame(OP_BINARY, b"a" * 500, fin=False) + build_frame(OP_CONT, b"b" * 500))
    assert c.recv_message().payload == b"a" * 500 + b"b" * 500


def test_message_over_max_message_is_1009(live):
    srv = live.server("--max-message", 1000)
    c = live.ws(srv)
    c.send_binary(b"m" * 1001)
    c.expect_close(1009)


def test_message_over_max_message_is_1009_from_the_header(live):
    """The length in the header is enough: the payload is never waited for."""
    srv = live.server("--max-message", 1000)
    c = live.ws(srv)
    c.send(build_frame(OP_TEXT, b"", length=1_000_000))
    c.expect_close(1009)


def test_fragmented_message_over_max_message_is_1009(live):
    srv = live.server("--max-message", 1000)
    c = live.ws(srv)
    c.send(build_frame(OP_TEXT, "a" * 600, fin=False) + build_frame(OP_CONT, "b" * 401, fin=True))
    c.expect_close(1009)


def test_many_small_fragments_over_max_message_is_1009(live):
    srv = live.server("--max-message", 1000)
    c = live.ws(srv)
    c.send(build_frame(OP_BINARY, b"", fin=False)
           + b"".join(build_frame(OP_CONT, b"x" * 100, fin=False) for _ in range(10))
           + build_frame(OP_CONT, b"y", fin=True))
    c.expect_close(1009)


def test_limit_is_per_message(live):
    srv = live.server("--max-message", 1000)
    c = live.ws(srv)
    for i in range(5):
        c.send(build_frame(OP_BINARY, b"a" * 600, fin=False) + build_frame(OP_CONT, b"b" * 400))
        assert len(c.recv_message().payload) == 1000


def test_control_frames_do_not_count_toward_max_message(live):
    srv = live.server("--max-message", 1000)
    c = live.ws(srv)
    c.send(build_frame(OP_TEXT, "a" * 900, fin=False) + build_frame(OP_PING, b"p" * 125)
           + build_frame(OP_CONT, "b" * 100))
    assert c.recv_frame().opcode == OP_PONG
    assert c.recv_text() == "a" * 900 + "b" * 100


def test_max_fragments(live):
    srv = live.server("--max-fragments", 10)
    c = live.ws(srv)
    ten = build_frame(OP_TEXT, "0", fin=False) + b"".join(
        build_frame(OP_CONT, str(i), fin=(i == 9)) for i in range(1, 10))
    c.send(ten)
    assert c.recv_text() == "0123456789"
    c.send(ten)  # the count is per message
    assert c.recv_text() == "0123456789"
    eleven = build_frame(OP_TEXT, "0", fin=False) + b"".join(
        build_frame(OP_CONT, "x", fin=(i == 10)) for i in range(1, 11))
    c.send(eleven)
    c.expect_close(1009)


def test_max_fragments_pings_do_not_count(live):
    srv = live.server("--max-fragments", 3)
    c = live.ws(srv)
    c.send(build_frame(OP_BINARY, b"a", fin=False) + build_frame(OP_PING, b"1") + build_frame(OP_PING, b"2")
           + build_frame(OP_CONT, b"b", fin=False) + build_frame(OP_PING, b"3") + build_frame(OP_CONT, b"c"))
    for p in (b"1", b"2", b"3"):
        f = c.recv_frame()
        assert f.opcode == OP_PONG and f.payload == p
    assert c.recv_message().payload == b"abc"


def test_utf8_validation_agrees_with_python(echo_server, live):
    """Seeded random byte strings, rich in lead and boundary bytes, as text messages in
    one frame, in two fragments, or a byte per write: the server echoes exactly those
    Python's strict UTF-8 decoder accepts (RFC 3629: no overlongs, no surrogates,
    nothing above U+10FFFF) and closes with 1007 on the others."""
    import random

    rng = random.Random(6455)
    special = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1,
               0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
    c = None
    for case in range(400):
        n = rng.randint(1, 12)
        body = bytes(rng.choice(special) if rng.random() < 0.8 else rng.randrange(256) for _ in range(n))
        data = b"a" * rng.choice([0, 3, 7, 8, 15, 16, 17, 33]) + body + b"z" * rng.choice([0, 0, 9, 20])
        try:
            data.decode("utf-8")
            valid = True
        except UnicodeDecodeError:
            valid = False
        if c is None:
            c = live.ws(echo_server)
        mode = case % 3
        if mode == 0:
            c.send_text(data)
        elif mode == 1:
            cut = rng.randint(0, len(data))
            c.send(build_frame(OP_TEXT, data[:cut], fin=False) + build_frame(OP_CONT, data[cut:]))
        else:
            f = build_frame(OP_TEXT, data)
            for i in range(0, len(f), 3):
                c.send(f[i:i + 3])
        if valid:
            f = c.recv_message()
            assert (f.opcode, f.payload) == (OP_TEXT, data), (case, data.hex())
        else:
            c.expect_close(1007)
            c.close()
            c = None
