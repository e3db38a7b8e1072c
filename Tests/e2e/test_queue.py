"""Send-queue overflow: a session whose queue overflows is closed with 4008
(CLIVE_CLOSE_SLOW) after whatever was already on its way, and nobody else notices."""

from wsraw import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, build_frame, wait_for

SLOW = 4008


def read_until_close(c, frame_size):
    """Reads the binary frames in front of the close frame (each exactly frame_size zero
    bytes: the stream stays well-formed); returns (count, close frame)."""
    n = 0
    while True:
        f = c.recv_frame(timeout=30)
        if f.opcode == OP_CLOSE:
            return n, f
        assert f.opcode == OP_BINARY and f.fin and f.payload == bytes(frame_size), f
        n += 1


def test_flood_overflows_and_closes_with_4008(live):
    srv = live.server("--queue-size", 64, "--close-ms", 10000)
    other = live.ws(srv)
    flooded = live.raw(srv, rcvbuf=4096)
    flooded.upgrade()
    flooded.send_text("/flood 100000 1000")  # and then read nothing
    st = wait_for(lambda: (s := srv.stats())["overflows"] >= 1 and s, what="an overflow")
    assert st["overflows"] == 1
    # the other session is unaffected
    for i in range(20):
        other.send_text(f"echo {i}")
        assert other.recv_text() == f"echo {i}"
    # frames written before the overflow (as many as the socket buffers took) come
    # first, whole; the queued ones were dropped
    n, close = read_until_close(flooded, 1000)
    assert close.code == SLOW, close
    assert n < 100000
    flooded.expect_eof()
    flooded.send_close(SLOW)
    flooded.close()
    wait_for(lambda: (s := srv.stats())["sessions"] == 1 and s["queued_frames"] == 0 and s["queued_bytes"] == 0,
             what="the flooded session and its queue gone")
    other.send_text("still fine")
    assert other.recv_text() == "still fine"


def test_flood_within_the_queue_is_delivered(live):
    srv = live.server("--queue-size", 64)
    c = live.ws(srv)
    c.send_text("/flood 64 1000")
    for _ in range(64):
        f = c.recv_message()
        assert f.opcode == OP_BINARY and f.payload == bytes(1000)
    c.send_text("/id")
    assert c.recv_text().isdigit()
    assert srv.stats()["overflows"] == 0


def test_queue_bytes_limit(live):
    srv = live.server("--queue-bytes", 100_000, "--close-ms", 10000)
    c = live.raw(srv, rcvbuf=4096)
    c.upgrade()
    # far more than the socket buffers hold; read nothing until the queue has overflowed
    # (a client that reads along may well keep up: the limit is what it fails to read)
    c.send_text("/flood 100000 10000")
    wait_for(lambda: srv.stats()["overflows"] == 1, what="overflows 1")
    n, close = read_until_close(c, 10000)
    assert close.code == SLOW
    assert n < 100000


def test_flood_longer_than_the_queue_within_socket_buffers(live):
    """The queue limits what the peer fails to read, not what one call queues: 2000
    frames sent in one callback through a 64-frame queue all arrive, because the server
    writes as it queues and 2000 small frames (24 KB) fit in the socket buffers."""
    srv = live.server("--queue-size", 64)
    c = live.ws(srv)
    c.send_text("/flood 2000 10")
    for _ in range(2000):
        f = c.recv_message()
        assert f.opcode == OP_BINARY and f.payload == bytes(10)
    assert c.command("/id").isdigit()
    assert srv.stats()["overflows"] == 0


def test_one_frame_larger_than_queue_bytes_is_accepted_into_an_empty_queue(live):
    srv = live.server("--queue-bytes", 1000)
    c = live.ws(srv)
    c.send_binary(bytes(5000))
    f = c.recv_message()
    assert f.opcode == OP_BINARY and len(f.payload) == 5000
    assert srv.stats()["overflows"] == 0


def test_slow_subscriber_is_cut_off(live):
    """A subscriber that stops reading: publishes fill its socket buffers, then its queue,
    and it is closed with 4008 after a well-formed stream; the publisher and a reading
    subscriber carry on."""
    srv = live.server("--loops", 2, "--queue-size", 64, "--close-ms", 10000)
    slow = live.raw(srv, rcvbuf=4096)
    slow.upgrade()
    assert slow.command("/sub room") == "ok sub room"
    reader = live.ws(srv)
    assert reader.command("/sub room") == "ok sub room"
    publisher = live.ws(srv)
    size = 65536
    published = 0
    while srv.stats()["overflows"] == 0:
        assert published < 2000, "no overflow after 2000 publishes of 64 KiB"
        batch = 25
        publisher.send(b"".join(build_frame(OP_TEXT, f"/pubbin room {size} ") for _ in range(batch)))
        for _ in range(batch):
            assert publisher.recv_text() == "ok pub room"
        for _ in range(batch):
            f = reader.recv_message(timeout=30)
            assert f.opcode == OP_BINARY and len(f.payload) == size
        published += batch
    n, close = read_until_close(slow, size)
    assert close.code == SLOW, close
    assert 0 < n < published, (n, published)
    slow.expect_eof()
    wait_for(lambda: srv.stats()["subscriptions"] == 1 or None, what="the slow subscriber left the topic")
    assert publisher.command(f"/pubbin room {size} ") == "ok pub room"
    assert len(reader.recv_message().payload) == size


MAX = 16 << 20  # the default max_message and queue_bytes


def test_max_size_message_followed_by_a_ping(live):
    """Regression: the default queue_bytes used to be exactly max_message (16 MiB), less
    than the echo frame of a maximal message (16 MiB + its 10-byte header), which then
    fit only an empty queue: a pong queued behind it before the first write overflowed
    the queue (4008 'slow', neither echo nor pong sent)."""
    srv = live.server()
    c = live.ws(srv)
    c.send(build_frame(OP_BINARY, bytes(MAX)) + build_frame(OP_PING, b"p"))
    f = c.recv_frame(timeout=30)
    assert f.opcode == OP_BINARY and len(f.payload) == MAX, f
    f = c.recv_frame(timeout=30)
    assert f.opcode == OP_PONG and f.payload == b"p", f


def test_slightly_smaller_message_followed_by_a_ping(live):
    """The same with 100 bytes less: the echo and the pong both fit in the queue."""
    srv = live.server()
    c = live.ws(srv)
    c.send(build_frame(OP_BINARY, bytes(MAX - 100)) + build_frame(OP_PING, b"p"))
    f = c.recv_frame(timeout=30)
    assert f.opcode == OP_BINARY and len(f.payload) == MAX - 100, f
    f = c.recv_frame(timeout=30)
    assert f.opcode == OP_PONG and f.payload == b"p", f
