"""live-server over TLS: --tls-cert/--tls-key (the main port then speaks TLS) and
--tls-port (TLS beside a plain port), the conventions over wss://, a certificate reloaded
on SIGHUP while sessions stay open, bad TLS flags refused at start with a message, and a
client's failed handshake logged at debug level, never as an error."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess
import urllib.request

import pytest

from certs import client_context, der, make_cert
from liveproto import Client, Msg
from liveserver import server_binary
from process import wait_for_text
from test_metrics import scrape

TIMEOUT = 30


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    return {"a": make_cert(d, "a"), "b": make_cert(d, "b")}


def https_get(url: str):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=client_context()))
    with opener.open(url, timeout=TIMEOUT) as r:
        return r.status, r.read()


def peer_certificate(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with client_context().wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def wss_client(servers, url: str, **kw) -> Client:
    c = Client(url, ssl=client_context(), **kw)
    servers.defer(c.close)
    return c


def test_rooms_over_wss_on_the_main_port(servers, certs):
    cert, key = certs["a"]
    srv = servers.start("--tls-cert", cert, "--tls-key", key, "--no-presence-events")
    assert srv.scheme == "https" and srv.tls_port == srv.port
    assert https_get(f"{srv.https}/healthz") == (200, b"ok\n")
    assert b"<html" in https_get(f"{srv.https}/")[1].lower()
    alice, bob = wss_client(servers, srv.wss, name="alice"), wss_client(servers, srv.wss, name="bob")
    alice.join("room")
    bob.join("room")
    body = json.dumps({"text": "over tls"}).encode()
    alice.send("publish", "room", "p-1", body)
    assert {alice.recv(), alice.recv()} == {Msg("message", "room", "", body), Msg("reply", "room", "p-1")}
    assert bob.recv() == Msg("message", "room", "", body)


def test_tls_port_beside_a_plain_port(servers, certs):
    cert, key = certs["a"]
    srv = servers.start("--tls-cert", cert, "--tls-key", key, "--tls-port", 0, "--no-presence-events")
    assert srv.scheme == "http" and srv.tls_port not in (None, srv.port)
    plain = Client(srv.ws)
    servers.defer(plain.close)
    secure = wss_client(servers, srv.wss)
    for c in (plain, secure):
        c.join("mixed")
    plain.send("publish", "mixed", "p-1", json.dumps("from plain"))
    assert secure.recv() == Msg("message", "mixed", "", b'"from plain"')
    assert {plain.recv(), plain.recv()} == {Msg("message", "mixed", "", b'"from plain"'), Msg("reply", "mixed", "p-1")}
    secure.send("publish", "mixed", "p-2", json.dumps("from tls"))
    assert plain.recv() == Msg("message", "mixed", "", b'"from tls"')
    assert {secure.recv(), secure.recv()} == {Msg("message", "mixed", "", b'"from tls"'), Msg("reply", "mixed", "p-2")}


def test_sighup_reloads_the_certificate_and_keeps_sessions(servers, certs, tmp_path):
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(certs["a"][0], cert)
    shutil.copy(certs["a"][1], key)
    srv = servers.start("--tls-cert", cert, "--tls-key", key, "--no-presence-events")
    assert peer_certificate(srv.port) == der(certs["a"][0])
    old = wss_client(servers, srv.wss)
    old.join("news")
    shutil.copy(certs["b"][0], cert)
    shutil.copy(certs["b"][1], key)
    srv.send_signal(signal.SIGHUP)
    wait_for_text(srv.stderr, "TLS certificate reloaded", TIMEOUT)
    assert peer_certificate(srv.port) == der(certs["b"][0])
    new = wss_client(servers, srv.wss)
    new.send("publish", "news", "p-1", json.dumps("renewed"))
    assert old.recv() == Msg("message", "news", "", b'"renewed"')
    # a broken renewal: logged, and the certificate in use stays
    cert.write_text("garbage\n")
    srv.send_signal(signal.SIGHUP)
    wait_for_text(srv.stderr, "TLS certificate reload failed", TIMEOUT)
    assert peer_certificate(srv.port) == der(certs["b"][0])
    assert old.sync() == []


def test_a_failed_handshake_is_logged_at_debug_only(servers, certs):
    cert, key = certs["a"]
    srv = servers.start("--tls-cert", cert, "--tls-key", key, "--log-level", "debug")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT) as s:
        s.sendall(b"\x16\x03\x01\x00\x08not a hello at all")
        while s.recv(4096):
            pass
    line = wait_for_text(srv.stderr, "TLS handshake failed", TIMEOUT)
    assert " debug " in line, line
    assert " error " not in srv.stderr()


@pytest.mark.parametrize("flags,says", [
    (["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"],
     "cannot open certificate /nonexistent/cert.pem"),
    (["--tls-cert", "CERT"], "--tls-cert and --tls-key go together"),
    (["--tls-port", "8443"], "--tls-port needs --tls-cert and --tls-key"),
    (["--tls-cert", "CERT", "--tls-key", "KEY", "--tls-port", "70000"], "--tls-port must be 0...65535"),
    (["--tls-cert", "CERT", "--tls-key", "OTHERKEY"], "cannot use key"),
])
def test_bad_tls_flags_fail_at_start(certs, flags, says):
    swap = {"CERT": str(certs["a"][0]), "KEY": str(certs["a"][1]), "OTHERKEY": str(certs["b"][1])}
    argv = [str(server_binary()), "--port", "0"] + [swap.get(f, f) for f in flags]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert out.returncode != 0
    assert says in out.stderr, out.stderr
    assert "live-server: http" not in out.stdout


def test_tls_handshakes_and_failures_are_metrics(servers, certs):
    cert, key = certs["a"]
    srv = servers.start("--tls-cert", cert, "--tls-key", key, "--tls-port", 0)
    wss_client(servers, srv.wss).close()
    with socket.create_connection(("127.0.0.1", srv.tls_port), timeout=TIMEOUT) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")  # plain HTTP on the TLS port
        while s.recv(4096):
            pass
    m = scrape(srv.http)  # the plain port; a scrape reports the counters first
    assert m["live_tls_handshakes_total"] == 1 and m["live_tls_failures_total"] == 1, m
