"""Idle memory per connection with and without permessage-deflate negotiated.

Starts a server (any command that prints `PORT <n>` and takes --port 0; --deflate is
added for the compressed run), opens N WebSocket connections that complete the upgrade
(with a permessage-deflate offer as Chromium makes it, or without), sends one compressed
(or plain) message on each so the inflate path has run, and reports the server's RSS
growth per connection (VmRSS from /proc).

  python3 bench/deflate/idle.py [N] -- SERVER_CMD...
  e.g. TAKEOVER_FLAGS="--deflate-client-bits 15" \
       python3 bench/deflate/idle.py 3000 -- build/plain/test_server --loops 1
With TAKEOVER_FLAGS, a third run lets clients keep their context (a per-session inflater).
"""
import os
import socket
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../Tests/e2e"))
import wsraw  # noqa: E402


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run(n, argv, deflate, extra_flags=()):
    proc = subprocess.Popen(argv + (["--deflate"] if deflate else []) + list(extra_flags) + ["--port", "0"],
                            stdout=subprocess.PIPE)
    port = int(proc.stdout.readline().split()[1])
    time.sleep(0.5)
    base = rss_kib(proc.pid)
    clients = []
    msg = ('{"type":"message","text":"' + "hello idle world " * 20 + '"}').encode()
    c = zlib.compressobj(wbits=-15)
    z = (c.compress(msg) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    for _ in range(n):
        cl = wsraw.RawClient(port)
        extra = [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")] if deflate else []
        resp = cl.upgrade(extra=extra)
        assert (resp.header("Sec-WebSocket-Extensions") is not None) == deflate
        if deflate:
            cl.send_frame(wsraw.OP_TEXT, z, rsv=4)
        else:
            cl.send_text(msg)
        cl.recv_frame()
        clients.append(cl)
    time.sleep(1.0)
    grown = rss_kib(proc.pid) - base
    for cl in clients:
        cl.abort()
    proc.terminate()
    proc.wait()
    return grown


def main():
    args = sys.argv[1:]
    sep = args.index("--")
    n = int(args[0]) if sep > 0 else 2000
    argv = args[sep + 1:]
    runs = [("plain", False, ()), ("deflate", True, ())]
    takeover = os.environ.get("TAKEOVER_FLAGS")  # e.g. "--deflate-client-bits 15" (test_server)
    if takeover:
        runs.append((f"deflate, client context takeover ({takeover})", True, takeover.split()))
    for name, deflate, flags in runs:
        grown = run(n, argv, deflate, flags)
        print(f"{name}: {n} idle connections, RSS +{grown} KiB, {grown / n:.2f} KiB per connection")


if __name__ == "__main__":
    main()
