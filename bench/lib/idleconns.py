#!/usr/bin/env python3
"""Holds idle connections open against a proxy, for its memory per idle connection to be measured.

Usage: idleconns.py PORT N HOLD_SECONDS [MODE] [--window W]

MODE (default h1):
  h1   plain HTTP/1.1 keep-alive: one GET answered, then the connection waits
  h2   h2c with prior knowledge: the preface, SETTINGS, one GET stream answered, then idle
  tls  HTTPS (TLS 1.3, no certificate check) with HTTP/1.1 keep-alive: one GET answered, then idle

Opens N connections to 127.0.0.1:PORT with at most W (default 64, wrk's -c in the bench) requests
in flight at once, so what is measured is the connections' idle state, not the residue of a
burst of N requests at once. Prints how many were answered with 200, then keeps all of them open
(idle) for HOLD_SECONDS while the caller reads the proxy's RSS. Bounded: every socket has a 5 s
timeout, and the whole opening phase gives up after 120 s.
"""
import socket
import ssl
import struct
import sys
import time

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# HPACK, static table only: :method GET (2), :path / (4), :scheme http (6), then :authority
# (index 1) as a literal without indexing: value "bench".
H2_REQUEST_BLOCK = b"\x82\x84\x86\x01\x05bench"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def read_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise OSError("closed")
        out += chunk
    return out


def open_h1(port, tls_context):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if tls_context is not None:
        s = tls_context.wrap_socket(s, server_hostname="bench.test")
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    return s


def answered_h1(s):
    # The bench's answers are a short head and a 2-byte body: one read holds the status line.
    return s.recv(4096).startswith(b"HTTP/1.1 200")


def open_h2(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(H2_PREFACE + frame(0x4, 0, 0) + frame(0x1, 0x5, 1, H2_REQUEST_BLOCK))
    return s


def answered_h2(s):
    """Reads frames until stream 1 ends; acknowledges the server's SETTINGS on the way."""
    status = False
    while True:
        head = read_exact(s, 9)
        length = int.from_bytes(head[:3], "big")
        kind, flags = head[3], head[4]
        stream = struct.unpack(">I", head[5:9])[0] & 0x7FFFFFFF
        payload = read_exact(s, length)
        if kind == 0x4 and not flags & 0x1:
            s.sendall(frame(0x4, 0x1, 0))
        elif kind == 0x7:
            return False
        elif stream == 1 and kind == 0x1:
            # :status 200 is static-table index 8 (0x88); skip padding/priority if flagged.
            block = payload
            if flags & 0x8:
                block = block[1 : len(block) - block[0]]
            if flags & 0x20:
                block = block[5:]
            status = block[:1] == b"\x88"
            if flags & 0x1:
                return status
        elif stream == 1 and kind == 0x0 and flags & 0x1:
            return status
        elif stream == 1 and kind == 0x3:
            return False


def main():
    args = sys.argv[1:]
    window = 64
    if "--window" in args:
        i = args.index("--window")
        window = int(args[i + 1])
        del args[i : i + 2]
    port, n, hold = int(args[0]), int(args[1]), float(args[2])
    mode = args[3] if len(args) > 3 else "h1"
    tls_context = None
    if mode == "tls":
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls_context.check_hostname = False
        tls_context.verify_mode = ssl.CERT_NONE
        tls_context.minimum_version = ssl.TLSVersion.TLSv1_3
        tls_context.set_alpn_protocols(["http/1.1"])
    elif mode not in ("h1", "h2"):
        sys.exit(f"unknown mode {mode!r} (h1, h2, tls)")
    give_up = time.monotonic() + 120
    socks = []
    answered = 0
    pending = []

    def settle(batch):
        nonlocal answered
        for s in batch:
            try:
                if (answered_h2 if mode == "h2" else answered_h1)(s):
                    answered += 1
            except OSError:
                pass

    for _ in range(n):
        if time.monotonic() > give_up:
            break
        try:
            s = open_h2(port) if mode == "h2" else open_h1(port, tls_context)
        except OSError:
            continue
        socks.append(s)
        pending.append(s)
        if len(pending) >= window:
            settle(pending)
            pending = []
    settle(pending)
    print(answered, flush=True)
    time.sleep(hold)


main()
