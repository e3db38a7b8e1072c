"""Fanout with and without permessage-deflate: server CPU per delivery and bytes on the
wire per delivery, for a realistic ~1.5 KiB chat-message JSON body.

Starts the server (a command that prints `PORT <n>` and takes --port 0, e.g. the C
test_server; --deflate is added for the compressed run), subscribes S raw clients to one
topic (offering permessage-deflate in the compressed run), publishes P messages through
one more client, and reads until every subscriber has seen the end marker. The server's
CPU (utime + stime from /proc) is read before and after. The subscribers only count
bytes, so the client side costs the same either way.

  python3 bench/deflate/fanout.py [SUBSCRIBERS] [PUBLISHES] -- SERVER_CMD...
  e.g. python3 bench/deflate/fanout.py 1000 200 -- build/plain/test_server --loops 1
"""
import json
import os
import selectors
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../Tests/e2e"))
import wsraw  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def body(i):
    return json.dumps({
        "type": "message", "room": "general", "id": f"msg-{i:06d}",
        "user": {"id": 4242, "name": "Ada Lovelace", "avatar": "https://example.com/a/4242.png"},
        "text": "The analytical engine weaves algebraic patterns just as the Jacquard loom "
                "weaves flowers and leaves; it might act upon other things besides number. " * 8,
        "reactions": [{"emoji": "thumbs_up", "count": i % 7}, {"emoji": "heart", "count": 2}],
        "sent_at": "2026-12-03T08:00:00Z",
    })


def run(argv, subs, pubs, deflate):
    proc = subprocess.Popen(argv + (["--deflate"] if deflate else []) + ["--port", "0"],
                            stdout=subprocess.PIPE)
    port = int(proc.stdout.readline().split()[1])
    extra = [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")] if deflate else []
    clients = []
    for _ in range(subs):
        c = wsraw.RawClient(port)
        c.upgrade(extra=extra)
        assert c.command("/sub t") == "ok sub t"
        c.sock.setblocking(False)
        clients.append(c)
    pub = wsraw.RawClient(port)
    pub.upgrade()
    sel = selectors.DefaultSelector()
    tails = {}
    received = {}
    for c in clients:
        sel.register(c.sock, selectors.EVENT_READ, c)
        tails[c] = b""
        received[c] = 0
    msgs = [body(i) for i in range(pubs)]
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    for m in msgs:
        pub.send_text(f"/pub t {m}")
    pub.send_text("/pub t END")
    done = 0
    while done < subs:
        for key, _ in sel.select(timeout=30):
            c = key.data
            data = c.sock.recv(1 << 20)
            received[c] += len(data)
            tails[c] = (tails[c] + data)[-8:]
            if tails[c].endswith(b"END"):
                sel.unregister(c.sock)
                done += 1
    wall, cpu = time.monotonic() - t0, cpu_seconds(proc.pid) - cpu0
    deliveries = subs * pubs
    wire = sum(received.values())
    for c in clients:
        c.abort()
    pub.abort()
    proc.terminate()
    proc.wait()
    return deliveries, wire, cpu, wall


def main():
    args = sys.argv[1:]
    sep = args.index("--")
    subs = int(args[0]) if sep > 0 else 1000
    pubs = int(args[1]) if sep > 1 else 200
    argv = args[sep + 1:]
    print(f"body {len(body(0))} bytes, {subs} subscribers, {pubs} publishes")
    for deflate in (False, True):
        d, wire, cpu, wall = run(argv, subs, pubs, deflate)
        print(f"{'deflate' if deflate else 'plain  '}: {d} deliveries in {wall:.2f} s, "
              f"{wire / d:.0f} wire bytes/delivery, server CPU {cpu:.2f} s = "
              f"{cpu / d * 1e6:.2f} us/delivery")


if __name__ == "__main__":
    main()
