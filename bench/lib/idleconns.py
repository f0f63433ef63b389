#!/usr/bin/env python3
"""Holds idle keep-alive connections open against a proxy, for its memory to be measured.

Usage: idleconns.py PORT N HOLD_SECONDS

Opens N connections to 127.0.0.1:PORT, sends one HTTP/1.1 request on each, reads each answer,
prints how many were answered with 200, then keeps all of them open (idle) for HOLD_SECONDS
while the caller reads the proxy's RSS. Bounded: every socket has a 5 s timeout.
"""
import socket
import sys
import time

port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    socks.append(s)
answered = 0
for s in socks:
    try:
        if s.recv(4096).startswith(b"HTTP/1.1 200"):
            answered += 1
    except OSError:
        pass
print(answered, flush=True)
time.sleep(hold)
