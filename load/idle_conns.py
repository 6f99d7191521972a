#!/usr/bin/env python3
"""Hold many idle HTTP/1.1 keep-alive connections open against one proxy (stdlib only).

Opens --count TCP connections to --host:--port, sends one keep-alive GET --path (with the
Coopr headers) on each and reads its response, so every connection sits idle in the proxy's
keep-alive state. Then writes a JSON line {"opened", "answered", "failed", "seconds"} to
--ready-file and holds the sockets until SIGTERM/SIGINT or --hold seconds. On exit it counts how
many connections the proxy still has open (a closed one reads EOF) and prints a JSON summary.

--tls speaks TLS (HTTP/1.1 by ALPN) to a TLS listener, for the memory of idle TLS connections.

Raises its own RLIMIT_NOFILE soft limit to the hard limit; bench.sh raises `ulimit -n` first.
Only meant for 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import socket
import ssl
import sys
import time


def read_response(sock: socket.socket, timeout: float) -> bool:
    """Read one HTTP/1.1 response with a Content-Length body; True on a 2xx."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        body += chunk
    return 200 <= status < 300


def still_open(socks: list[socket.socket]) -> int:
    """Connections the server has not closed (a closed one reads EOF or a reset)."""
    alive = 0
    for s in socks:
        try:
            s.setblocking(False)
            # The socket's own recv (a TLS socket refuses flags): raw bytes, TLS or not.
            if socket.socket.recv(s, 1, socket.MSG_PEEK):
                alive += 1          # unexpected bytes, but still open
        except (BlockingIOError, InterruptedError):
            alive += 1              # nothing to read: open and idle
        except OSError:
            pass                    # reset
    return alive


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/status")
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--hold", type=float, default=600, help="seconds to hold at most")
    p.add_argument("--ready-file", required=True)
    p.add_argument("--tls", action="store_true",
                   help="TLS (HTTP/1.1 by ALPN; the certificate is not checked: loopback only)")
    a = p.parse_args()
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("idle_conns.py only targets loopback")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.count + 100
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        print(f"warning: RLIMIT_NOFILE {soft} < {want}; fewer connections will open", file=sys.stderr)

    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    request = (f"GET {a.path} HTTP/1.1\r\nHost: {a.host}:{a.port}\r\nConnection: keep-alive\r\n"
               "Coopr-UserID: admin\r\nCoopr-TenantID: superadmin\r\n\r\n").encode()
    tls = None
    if a.tls:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        tls.set_alpn_protocols(["http/1.1"])
    socks: list[socket.socket] = []
    answered = failed = 0
    t0 = time.monotonic()
    for _ in range(a.count):
        if stop:
            break
        try:
            s = socket.create_connection((a.host, a.port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                s = tls.wrap_socket(s, server_hostname=a.host)
            s.sendall(request)
            if read_response(s, 10):
                answered += 1
            socks.append(s)
        except OSError as e:
            failed += 1
            if failed == 1:
                print(f"first failure after {len(socks)} connections: {e}", file=sys.stderr)
    ready = {"opened": len(socks), "answered": answered, "failed": failed,
             "seconds": round(time.monotonic() - t0, 2)}
    with open(a.ready_file, "w") as f:
        f.write(json.dumps(ready) + "\n")

    deadline = time.monotonic() + a.hold
    while not stop and time.monotonic() < deadline:
        time.sleep(0.2)
    ready["still_open_at_end"] = still_open(socks)
    ready["held_seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(ready), flush=True)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
