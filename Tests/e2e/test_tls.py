"""TLS listeners (wss://) in the core: handshakes with Python's ssl (TLS 1.2 and 1.3, ALPN),
echo, large messages through a slow reader, one topic with TLS and plain subscribers, a
stalled handshake cut at the handshake timeout, plain HTTP and garbage on the TLS port,
certificate reload while sessions stay open, and the shutdown path."""

import asyncio
import shutil
import signal
import ssl
import subprocess
import time

import pytest
from websockets.asyncio.client import connect

import wsraw
from certs import client_context, der, make_cert
from conftest import clive_server_argv
from wsraw import OP_BINARY, wait_for

TIMEOUT = 30


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    return {"a": make_cert(d, "a"), "b": make_cert(d, "b")}


def tls_server(live, certs, *flags, name="a"):
    """A test_server with a plain listener (for /stats) and a TLS one; returns it and the
    TLS port."""
    cert, key = certs[name]
    srv = live.server("--tls-cert", cert, "--tls-key", key, "--tls-port", 0, *flags)
    return srv, srv.stats()["tls_port"]


def tls_ws(live, port, ctx=None, **kw) -> wsraw.RawClient:
    c = wsraw.RawClient(port, tls=ctx or client_context(), **kw)
    live.defer(c.close)
    c.upgrade()
    return c


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_echo_over_tls_1_2_and_1_3(live, certs, version):
    srv, port = tls_server(live, certs)
    c = tls_ws(live, port, client_context(version))
    assert c.sock.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    assert c.command("hello over tls") == "hello over tls"
    assert srv.stats()["tls_handshakes"] >= 1


def test_tls_1_1_is_refused(live, certs):
    srv, port = tls_server(live, certs)
    ctx = client_context()
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with pytest.warns(DeprecationWarning):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, ConnectionError)):
        wsraw.RawClient(port, tls=ctx).close()
    wait_for(lambda: srv.stats()["tls_failures"] == 1, what="the refused handshake to be counted")


@pytest.mark.parametrize("offer,chosen", [(["h2", "http/1.1"], "http/1.1"), (["http/1.1"], "http/1.1"),
                                          (["h2"], None)])
def test_alpn_selects_http_1_1(live, certs, offer, chosen):
    srv, port = tls_server(live, certs)
    c = tls_ws(live, port, client_context(alpn=offer))
    assert c.sock.selected_alpn_protocol() == chosen
    assert c.command("alpn") == "alpn"


def test_websockets_client_over_wss_with_large_messages(live, certs):
    srv, port = tls_server(live, certs, "--max-message", 4 << 20)
    big = "x" * (3 << 20)

    async def go():
        async with connect(f"wss://127.0.0.1:{port}/", ssl=client_context(), max_size=None) as ws:
            await ws.send("small")
            assert await ws.recv() == "small"
            await ws.send(big)
            assert await ws.recv() == big

    asyncio.run(asyncio.wait_for(go(), TIMEOUT))


def test_a_slow_reader_gets_every_byte(live, certs):
    """32 messages of 256 KiB queued at once to a client that reads nothing at first: the
    socket fills, the session holds the ciphertext it could not send, and everything
    arrives intact and in order once the client reads."""
    srv, port = tls_server(live, certs)
    c = wsraw.RawClient(port, tls=client_context(), rcvbuf=4096)
    live.defer(c.close)
    c.upgrade()
    c.send_text("/flood 32 262144")
    wait_for(lambda: srv.stats()["queued_bytes"] > 0, what="the flood to back up")
    for _ in range(32):
        f = c.recv_frame()
        assert f.opcode == OP_BINARY and len(f.payload) == 262144 and f.payload == bytes(262144)
    assert c.command("after") == "after"


def test_one_topic_with_tls_and_plain_subscribers(live, certs):
    srv, port = tls_server(live, certs, "--loops", 2)
    secure = [tls_ws(live, port) for _ in range(3)]
    plain = [live.ws(srv) for _ in range(3)]
    for c in secure + plain:
        assert c.command("/sub room") == "ok sub room"
    pub = tls_ws(live, port)
    msgs = [f"message {i} " + "z" * (i * 300) for i in range(40)]
    for m in msgs:
        assert pub.command(f"/pub room {m}") == "ok pub room"
    for c in secure + plain:
        assert [c.recv_text() for _ in msgs] == msgs


def test_stalled_handshake_is_cut_and_others_are_served(live, certs):
    srv, port = tls_server(live, certs, "--handshake-ms", 500)
    # the first half of a real ClientHello, then silence
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    stalled = wsraw.RawClient(port)
    live.defer(stalled.close)
    stalled.send(hello[: len(hello) // 2])
    silent = wsraw.RawClient(port)  # connects and never sends a byte
    live.defer(silent.close)
    ok = tls_ws(live, port)
    assert ok.command("not held up") == "not held up"
    stalled.expect_abort(timeout=10)
    silent.expect_abort(timeout=10)
    assert ok.command("still here") == "still here"


def test_plain_http_on_the_tls_port_gets_a_readable_400(live, certs):
    srv, port = tls_server(live, certs)
    c = wsraw.RawClient(port)
    live.defer(c.close)
    c.request()
    resp = c.read_response()
    assert resp.status == 400 and b"TLS" in resp.body, resp
    c.expect_eof()
    st = srv.stats()
    assert st["tls_failures"] == 1 and st["rejected"]["400"] == 1
    assert "log debug: plain HTTP on a TLS port" in srv.stderr()


def test_garbage_handshake_is_counted_and_logged_at_debug(live, certs):
    srv, port = tls_server(live, certs)
    c = wsraw.RawClient(port)
    live.defer(c.close)
    c.send(b"\x16\x03\x01\x00\x08not a hello at all")
    wait_for(lambda: srv.stats()["tls_failures"] == 1, what="the failed handshake to be counted")
    deadline = time.monotonic() + 10
    while c._fill(deadline):  # an alert may come first, then the end
        pass
    log = srv.stderr()
    assert "log debug: TLS handshake failed" in log
    assert "log warning" not in log and "log info" not in log


def renewable_server(live, certs, tmp_path):
    """A server whose certificate files (copies of "a") the test may replace: the server,
    its TLS port, and the two paths."""
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(certs["a"][0], cert)
    shutil.copy(certs["a"][1], key)
    srv = live.server("--tls-cert", cert, "--tls-key", key, "--tls-port", 0)
    return srv, srv.stats()["tls_port"], cert, key


def test_reload_swaps_the_certificate_and_keeps_sessions(live, certs, tmp_path):
    srv, port, cert, key = renewable_server(live, certs, tmp_path)
    old = tls_ws(live, port)
    assert old.sock.getpeercert(binary_form=True) == der(certs["a"][0])
    assert old.command("/sub news") == "ok sub news"
    # renewal: the files are replaced, then SIGHUP
    shutil.copy(certs["b"][0], cert)
    shutil.copy(certs["b"][1], key)
    srv.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload ok" in srv.stderr(), what="the reload")
    new = tls_ws(live, port)
    assert new.sock.getpeercert(binary_form=True) == der(certs["b"][0])
    assert new.command("/pub news renewed") == "ok pub news"
    assert old.recv_text() == "renewed"
    assert old.command("still open") == "still open"


def test_a_failed_reload_keeps_the_certificate_in_use(live, certs, tmp_path):
    srv, port, cert, _ = renewable_server(live, certs, tmp_path)
    cert.write_text("not a certificate\n")
    srv.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in srv.stderr(), what="the failed reload")
    assert f"cannot use certificate {cert}" in srv.stderr()
    c = tls_ws(live, port)
    assert c.sock.getpeercert(binary_form=True) == der(certs["a"][0])


def test_tls_only_listener(live, certs):
    cert, key = certs["a"]
    srv = live.server("--tls-cert", cert, "--tls-key", key)
    c = tls_ws(live, srv.port)
    assert c.command("only tls") == "only tls"
    c.close()
    assert live.stop(srv) == 0


def test_shutdown_closes_tls_sessions_with_1001(live, certs):
    srv, port = tls_server(live, certs)
    clients = [tls_ws(live, port) for _ in range(3)]
    for c in clients:
        assert c.command("/sub t") == "ok sub t"
    live.servers.remove(srv)
    srv.terminate()
    for c in clients:
        c.expect_close(1001, "server shutting down")
    assert srv.wait() == 0


@pytest.mark.parametrize("files,named", [
    (lambda d, c: (d / "missing.pem", c["a"][1]), "cannot open certificate"),
    (lambda d, c: (c["a"][0], c["b"][1]), "cannot use key"),
])
def test_bad_certificate_files_fail_at_start_with_their_name(certs, tmp_path, files, named):
    cert, key = files(tmp_path, certs)
    out = subprocess.run(clive_server_argv() + ["--port", "0", "--tls-cert", str(cert), "--tls-key", str(key)],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 2
    assert named in out.stderr
    assert str(cert if "certificate" in named else key) in out.stderr


def test_compression_over_tls(live, certs):
    """permessage-deflate and TLS together: a compressed subscriber over wss and a plain one
    get the same publishes; the publish is compressed once."""
    srv, port = tls_server(live, certs, "--deflate")
    msgs = ["compressible words, again and again; " * 40 + str(i) for i in range(5)]

    async def go():
        async with connect(f"wss://127.0.0.1:{port}/", ssl=client_context(), max_size=None) as ws:
            assert "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")
            await ws.send("/sub z")
            assert await ws.recv() == "ok sub z"
            plain, pub = tls_ws(live, port), tls_ws(live, port)
            assert plain.command("/sub z") == "ok sub z"
            for m in msgs:
                assert await asyncio.to_thread(pub.command, f"/pub z {m}") == "ok pub z"
            got = [await ws.recv() for _ in msgs]
            assert got == msgs
            assert [plain.recv_text() for _ in msgs] == msgs

    asyncio.run(asyncio.wait_for(go(), TIMEOUT))
    assert srv.stats()["compressions"] == len(msgs)
