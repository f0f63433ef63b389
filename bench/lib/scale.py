#!/usr/bin/env python3
"""Scale figures for sluice (issue 7, deliverable 3).

Generates a file of 1,000 HTTP BackendPools with 10 endpoints each (10 ports, 100 hosts per port;
the endpoints are unroutable 10.x.y.z:80 addresses that are never contacted: no health checks)
plus one "probe" pool in front of a real backend, starts `sluice serve` on it and reports, as JSON:

- start-up: process start -> /readyz 200 (load + validate + apply + listeners);
- apply time of the initial configuration (sluice_config_apply_seconds_sum);
- memory (VmRSS, VmHWM) with the whole set loaded;
- file change -> first request served by a new endpoint: the probe pool's file entry gains a
  second endpoint (the file is rewritten and renamed into place, as editors and ConfigMap mounts
  do); a fresh connection per request polls until the new backend's body answers. Repeated
  --changes times (the endpoint is removed again, and the removal confirmed, between changes).

Every wait is bounded; sluice is killed on exit.
"""
import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import time

POOLS = 1000
ENDPOINTS_PER_POOL = 10
PORTS = 10
PROBE_HOST = "probe.scale.test"


def pool_doc(name: str, port: int, host: str, endpoints: list) -> str:
    eps = "\n".join(f'    - {{address: "{a}"}}' for a in endpoints)
    return (
        "apiVersion: sluice.dev/v1alpha1\nkind: BackendPool\n"
        f"metadata: {{name: {name}, namespace: scale}}\n"
        "spec:\n  protocol: HTTP\n"
        f"  listener: {{port: {port}, hosts: [{host}]}}\n"
        "  algorithm: RoundRobin\n  endpoints:\n"
        f"{eps}\n"
    )


def big_part(port_base: int) -> str:
    docs = []
    n = 0
    for i in range(POOLS):
        eps = []
        for _ in range(ENDPOINTS_PER_POOL):
            n += 1
            eps.append(f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}:80")
        docs.append(pool_doc(f"p{i:04d}", port_base + i % PORTS, f"h{i:04d}.scale.test", eps))
    return "---\n".join(docs)


def write_config(path: str, big: str, port: int, probe_endpoints: list) -> float:
    """Writes the file atomically (tmp + rename); returns the perf_counter() of the rename."""
    text = big + "---\n" + pool_doc("probe", port, PROBE_HOST, probe_endpoints)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    t = time.perf_counter()
    os.rename(tmp, path)
    return t


def get(port: int, host: str, path: str = "/", timeout: float = 1.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def metrics(admin: int) -> dict:
    _, text = get(admin, "127.0.0.1", "/metrics")
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(sluice_config_apply_seconds_(?:sum|count)|sluice_config_reloads_total\{result=\"(\w+)\"\})\s+(\S+)$", line)
        if m:
            key = m.group(1) if not m.group(2) else f"reloads_{m.group(2)}"
            out[key] = float(m.group(3))
    return out


def mem(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024.0
    return out


def wait_until(pred, limit: float, step: float = 0.0):
    end = time.perf_counter() + limit
    while time.perf_counter() < end:
        try:
            v = pred()
            if v:
                return v
        except (OSError, http.client.HTTPException):
            pass
        if step:
            time.sleep(step)
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--admin-port", type=int, required=True)
    ap.add_argument("--port-base", type=int, required=True)
    ap.add_argument("--backends", required=True, help="3 HTTP backend ports, bodies a1 a2 a3")
    ap.add_argument("--changes", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    be = [int(p) for p in a.backends.split(",")]
    probe_port = a.port_base
    path = os.path.join(a.dir, "scale.yaml")
    big = big_part(a.port_base)
    write_config(path, big, probe_port, [f"127.0.0.1:{be[0]}"])
    result = {
        "pools": POOLS + 1,
        "endpoints": POOLS * ENDPOINTS_PER_POOL + 1,
        "ports": PORTS,
        "file_bytes": os.path.getsize(path),
        "workers": a.workers,
    }
    log = open(os.path.join(a.dir, "sluice.log"), "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [a.sluice, "serve", "--config", path, "--workers", str(a.workers), "--bind", "127.0.0.1",
         "--admin-listen", f"127.0.0.1:{a.admin_port}", "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=log)
    try:
        ready = wait_until(lambda: get(a.admin_port, "127.0.0.1", "/readyz", 0.5)[0] == 200, 120, 0.005)
        if not ready:
            result["error"] = "sluice was not ready within 120 s"
            print(json.dumps(result))
            return 1
        result["startup_seconds"] = time.perf_counter() - t0
        m0 = metrics(a.admin_port)
        result["initial_apply_seconds"] = m0.get("sluice_config_apply_seconds_sum")
        time.sleep(0.5)
        result["loaded_mib"] = mem(proc.pid)
        status, body = get(probe_port, PROBE_HOST)
        if (status, body) != (200, "a1"):
            result["error"] = f"probe pool answered {status} {body!r}, expected 200 'a1'"
            print(json.dumps(result))
            return 1

        changes = []
        for k in range(a.changes):
            new = 1 + k % 2  # alternate between backend a2 and a3
            want = f"a{new + 1}"
            before = metrics(a.admin_port).get("reloads_success", 0)
            t_change = write_config(path, big, probe_port, [f"127.0.0.1:{be[0]}", f"127.0.0.1:{be[new]}"])
            polls = 0

            def served_by_new():
                nonlocal polls
                polls += 1
                return get(probe_port, PROBE_HOST, timeout=1.0) == (200, want)

            ok = wait_until(served_by_new, 10.0)
            seen = time.perf_counter() - t_change
            if not ok:
                changes.append({"seconds": None, "polls": polls})
                break
            # Give the reload counter time to show this reload; then read its apply time.
            wait_until(lambda: metrics(a.admin_port).get("reloads_success", 0) > before, 5.0, 0.01)
            after = metrics(a.admin_port)
            changes.append({"seconds": seen, "polls": polls})
            # Revert (remove the endpoint) and confirm, so the next change starts from one endpoint.
            before = after.get("reloads_success", 0)
            write_config(path, big, probe_port, [f"127.0.0.1:{be[0]}"])
            wait_until(lambda: metrics(a.admin_port).get("reloads_success", 0) > before, 10.0, 0.01)
            wait_until(lambda: all(get(probe_port, PROBE_HOST) == (200, "a1") for _ in range(4)), 5.0, 0.01)
            time.sleep(0.2)
        m1 = metrics(a.admin_port)
        reloads = m1.get("sluice_config_apply_seconds_count", 1) - 1
        if reloads > 0:
            result["reload_apply_seconds_mean"] = (
                m1["sluice_config_apply_seconds_sum"] - m0["sluice_config_apply_seconds_sum"]) / reloads
        result["reloads_success"] = m1.get("reloads_success")
        result["reloads_failure"] = m1.get("reloads_failure")
        result["changes"] = changes
        done = [c["seconds"] for c in changes if c["seconds"] is not None]
        if done:
            result["change_to_first_request_median_s"] = statistics.median(done)
            result["change_to_first_request_max_s"] = max(done)
            result["change_to_first_request_min_s"] = min(done)
        result["after_reloads_mib"] = mem(proc.pid)
        print(json.dumps(result))
        return 0 if done and len(done) == a.changes else 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
