"""Live as a new user gets it: a versioned dependency of another package.

A throwaway consumer package in a temp dir depends on a tagged copy of this repository
with `.package(url: "file://.../live", from: "0.1.0")`, on the products `Live` and
`LiveRooms`, under the package identity the README gives (`live`). Its executable is the
README's example (Examples/readme/main.swift) with only the port changed. The test builds
it, runs it, and talks to it with a WebSocket client.

SwiftPM refuses a versioned dependency whose products contain `unsafeFlags`
("contains unsafe build flags"); `path:`, `branch:` and `revision:` dependencies do not
see that check, which is why only this kind of test catches it.

The copy is of the working tree (tracked and untracked files, not ignored ones), committed
and tagged in the temp dir: the real repository is never tagged. The consumer's other
dependencies resolve however git resolves github.com on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 1800.0  # a cold build of the consumer and its dependencies on a loaded 2-core machine
START_TIMEOUT = 30.0
RECV_TIMEOUT = 10.0
VERSION = "0.1.0"


def git(*args, cwd: Path):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


def tagged_copy(dest: Path):
    """The working tree's files (tracked, and untracked but not ignored) in a fresh
    repository at dest, committed and tagged VERSION."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_symlink() or not src.is_file():  # deleted in the tree, or the .venv link
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    git("init", "-q", cwd=dest)
    git("add", "-A", cwd=dest)
    git("-c", "user.name=consumer test", "-c", "user.email=consumer@test.invalid",
        "commit", "-q", "-m", "snapshot for the consumer test", cwd=dest)
    git("tag", VERSION, cwd=dest)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def consumer_package(dest: Path, live_url: str, port: int):
    example = (ROOT / "Examples/readme/main.swift").read_text()
    listen = 'try server.listen(host: "127.0.0.1", port: 8080)'
    assert example.count(listen) == 1, "the README example no longer listens as this test expects"
    (dest / "Sources/app").mkdir(parents=True)
    (dest / "Sources/app/main.swift").write_text(example.replace(listen, listen.replace("8080", str(port))))
    # the README's snippet, in a package of its own
    (dest / "Package.swift").write_text(textwrap.dedent(f"""\
        // swift-tools-version:6.0
        import PackageDescription

        let package = Package(
            name: "consumer",
            dependencies: [
                .package(url: "{live_url}", from: "{VERSION}"),
            ],
            targets: [
                .executableTarget(
                    name: "app",
                    dependencies: [
                        .product(name: "Live", package: "live"),
                        .product(name: "LiveRooms", package: "live"),
                    ],
                    path: "Sources/app"
                ),
            ]
        )
        """))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The consumer's executable, built, running, and listening on its port."""
    tmp = tmp_path_factory.mktemp("consumer")
    live = tmp / "live"  # the URL's last component is the package identity: live
    live.mkdir()
    tagged_copy(live)
    consumer = tmp / "app"
    consumer.mkdir()
    port = free_port()
    consumer_package(consumer, f"file://{live}", port)
    build = subprocess.run(["swift", "build", "--disable-dependency-cache", "--product", "app"], cwd=consumer,
                           capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert build.returncode == 0, f"the consumer does not build:\n{build.stdout[-6000:]}\n{build.stderr[-6000:]}"
    resolved = json.loads((consumer / "Package.resolved").read_text())
    pins = {p["identity"]: p for p in resolved["pins"]}
    assert pins["live"]["state"].get("version") == VERSION, pins["live"]

    log = open(tmp / "app.log", "wb")
    proc = subprocess.Popen([str(consumer / ".build/debug/app")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # the example prints nothing: it is ready when its port accepts
            assert proc.poll() is None, f"the example exited with {proc.returncode}:\n{(tmp / 'app.log').read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"nothing listens on {port} after {START_TIMEOUT}s"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def recv_json(ws) -> dict:
    return json.loads(ws.recv(timeout=RECV_TIMEOUT))


def test_the_example_refuses_a_client_without_a_user(app):
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{app}/ws", subprotocols=["live.v1.json"], open_timeout=RECV_TIMEOUT)
    assert refused.value.response.status_code == 401


def test_the_example_echoes_and_publishes_to_every_subscriber(app):
    url = f"ws://127.0.0.1:{app}/ws?user="
    with connect(url + "ada", subprotocols=["live.v1.json"], open_timeout=RECV_TIMEOUT) as ada, \
            connect(url + "bob", subprotocols=["live.v1.json"], open_timeout=RECV_TIMEOUT) as bob:
        # every message subscribes its sender to its topic, then goes to the topic's
        # subscribers: ada's first message comes back to ada alone
        ada.send(json.dumps({"type": "chat", "topic": "room", "body": {"n": 1}}))
        assert recv_json(ada) == {"type": "chat", "topic": "room", "body": {"n": 1}}
        # bob's reaches ada and bob
        bob.send(json.dumps({"type": "chat", "topic": "room", "body": {"n": 2}}))
        assert recv_json(bob) == {"type": "chat", "topic": "room", "body": {"n": 2}}
        assert recv_json(ada) == {"type": "chat", "topic": "room", "body": {"n": 2}}
