#!/usr/bin/env python3
"""Server RSS per idle WebSocket connection.

Starts the server command given (it must print "PORT <n>" on stdout when listening, as
live-echo and the C test server do), reads its RSS, opens N WebSocket connections that then
stay idle, reads its RSS again, and prints the difference per connection. Pin it like the
other benchmarks: taskset -c 1 bench/idle_rss.py -n 10000 -- taskset -c 0 .build/release/live-echo --port 0
"""
import argparse
import base64
import os
import resource
import socket
import subprocess
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def server_pid(proc):
    # `taskset -c 0 cmd` execs cmd, so the child's pid is the server's
    return proc.pid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.n + 100 > hard:
        sys.exit(f"need {a.n + 100} descriptors, the hard limit is {hard}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard)))
    try:
        line = proc.stdout.readline()
        port = int(line.split()[1])
        pid = server_pid(proc)
        # one connection first, so that lazily allocated per-loop state is in the baseline
        conns = [handshake(port)]
        time.sleep(0.5)
        before = rss_kib(pid)
        t0 = time.time()
        for i in range(a.n - 1):
            conns.append(handshake(port))
        took = time.time() - t0
        time.sleep(1.0)  # let the server settle; this is a measurement, not a test
        after = rss_kib(pid)
        per = (after - before) / (a.n - 1)
        print(f"idle_rss connections={a.n} rss_before_kib={before} rss_after_kib={after} "
              f"per_connection_kib={per:.3f} handshakes_per_s={(a.n - 1) / took:.0f}")
        for c in conns:
            c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def handshake(port):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed during handshake")
        buf += chunk
    if not buf.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(buf[:80])
    return s


if __name__ == "__main__":
    main()
