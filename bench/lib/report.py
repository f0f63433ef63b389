#!/usr/bin/env python3
"""Turns the raw outputs of bench/run.sh into the results table (stdout) and a markdown file.

Input (--work DIR): meta.txt, memory.txt, raw/ROUND-SCENARIO-TARGET.txt (tool output plus
'# key=value' lines written by run.sh), scale.json. Medians over rounds are reported.
"""
import argparse
import glob
import json
import os
import re
import statistics

SCENARIOS = [
    ("h1", "HTTP/1.1 keep-alive", "wrk -t2 -c64"),
    ("close", "HTTP/1.1 new connection per request", "wrk -t2 -c64 -H 'Connection: close'"),
    ("h2", "HTTP/2 h2c (prior knowledge)", "h2load -t2 -c16 -m4"),
    ("tls", "TLS handshakes/s, resumed (HTTPS, new connection per request, TLS 1.3 tickets)", "wrk -t2 -c64 -H 'Connection: close' https://"),
    ("tlsfull", "TLS handshakes/s, full (HTTPS, new connection per request, no resumption)", "tlsload 64 connections full"),
    ("tlska", "HTTPS keep-alive (TLS 1.3, AES-128-GCM)", "wrk -t2 -c64 https://"),
    ("tcpconn", "TCP short connections", "wrk -t2 -c64 -H 'Connection: close' via the L4 proxy"),
    ("bulk", "TCP bulk throughput", "4 streams, MB/s (10^6 B)"),
    ("grpc", "gRPC unary (h2c client, HTTP/2 to h2c gRPC backends)", "h2load -t2 -c16 -m4 -d grpc.bin"),
    ("tlsup", "HTTPS backends, keep-alive (TLS upstream connections reused)", "wrk -t2 -c64"),
    ("policy", "HTTP/1.1 keep-alive through every access policy (10,000-CIDR allow list, rate limit, body limit, CORS, basic auth); compare with the first row", "wrk -t2 -c64 + Authorization, Origin"),
]
TARGETS = ["sluice", "nginx", "haproxy", "direct"]
PROXIES = ["sluice", "nginx", "haproxy"]


def ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse(path: str) -> dict:
    text = open(path).read()
    r = {}
    for k, v in re.findall(r"^# (\w+)=(\S+)", text, re.M):
        r[k] = v
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:  # wrk
        r["rate"] = float(m.group(1))
        r["count"] = int(re.search(r"(\d+) requests in", text).group(1))
        for p in ("50", "99"):
            mm = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
            if mm:
                r[f"p{p}"] = ms(mm.group(1), mm.group(2))
        errors = 0
        mm = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        if mm:
            errors += sum(int(x) for x in mm.groups())
        mm = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        if mm:
            errors += int(mm.group(1))
        r["errors"] = errors
    m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", text)
    if m:  # h2load
        r["rate"] = float(m.group(1))
        mm = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", text)
        r["count"] = int(mm.group(4)) if mm else 0
        r["errors"] = (int(mm.group(5)) + int(mm.group(6)) + int(mm.group(7))) if mm else 0
        mm = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
        if mm:
            r["errors"] += int(mm.group(3)) + int(mm.group(4))
        if "h2_p50_ms" in r:
            r["p50"] = float(r["h2_p50_ms"])
            r["p99"] = float(r["h2_p99_ms"])
    m = re.search(r"bytes=(\d+) seconds=([\d.]+) mbps=([\d.]+) failed=(\d+)", text)
    if m:  # benchtool bulk
        r["rate"] = float(m.group(3))
        r["count"] = int(m.group(1)) / 1e6
        r["errors"] = int(m.group(4))
    cpu = float(r.get("proxy_cpu_seconds", "0") or 0)
    r["cpu"] = cpu
    if cpu > 0 and "count" in r:
        r["per_cpu"] = r["count"] / cpu
    if cpu > 0 and r.get("count") and "proxy_user_seconds" in r:  # older runs have only the sum
        r["user_us"] = float(r["proxy_user_seconds"]) * 1e6 / r["count"]
        r["system_us"] = float(r["proxy_system_seconds"]) * 1e6 / r["count"]
    return r


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, kind: str) -> str:
    if v is None:
        return "n/a"
    if kind == "rate":
        return f"{v:,.0f}"
    if kind == "ms" or kind == "us":
        return f"{v:.2f}" if v < 10 else f"{v:.1f}"
    if kind == "x":
        return f"{v:.2f}x"
    return str(v)


def ratio(a, b):
    return a / b if a is not None and b else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    meta = dict(line.rstrip("\n").split("=", 1) for line in open(os.path.join(a.work, "meta.txt")) if "=" in line)
    mem = {}
    for line in open(os.path.join(a.work, "memory.txt")):
        kind, target, kib = line.split()
        mem[(kind, target)] = int(kib) / 1024.0
    runs = {}
    for path in sorted(glob.glob(os.path.join(a.work, "raw", "*.txt"))):
        rnd, scen, target = os.path.basename(path)[:-4].split("-")
        runs.setdefault((scen, target), []).append((int(rnd), parse(path)))

    agg = {}
    for key, rs in runs.items():
        rs = [r for _, r in rs]
        agg[key] = {
            "rate": med([r.get("rate") for r in rs]),
            "p50": med([r.get("p50") for r in rs]),
            "p99": med([r.get("p99") for r in rs]),
            "per_cpu": med([r.get("per_cpu") for r in rs]),
            "user_us": med([r.get("user_us") for r in rs]),
            "system_us": med([r.get("system_us") for r in rs]),
            "errors": sum(r.get("errors", 0) for r in rs),
            "min": min((r.get("rate") or 0) for r in rs),
            "max": max((r.get("rate") or 0) for r in rs),
        }

    head = "| scenario | metric | sluice | nginx | haproxy | direct | sluice/nginx | sluice/haproxy |"
    rows = [head, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for scen, title, how in SCENARIOS:
        if not any((scen, t) in agg for t in TARGETS):
            continue  # not run (SCENARIOS picked a subset)
        g = {t: agg.get((scen, t), {}) for t in TARGETS}
        bulk = scen == "bulk"
        unit = "MB/s" if bulk else ("handshakes/s" if scen in ("tls", "tlsfull") else "req/s")
        label = f"**{title}**<br>`{how}`"

        def row(metric, key, kind, ratios=True, first=False):
            vals = [g[t].get(key) for t in TARGETS]
            cells = [fmt(v, kind) for v in vals]
            rs = [fmt(ratio(vals[0], vals[1]), "x"), fmt(ratio(vals[0], vals[2]), "x")] if ratios else ["", ""]
            rows.append(f"| {label if first else ''} | {metric} | " + " | ".join(cells + rs) + " |")

        row(unit, "rate", "rate", first=True)
        if not bulk:
            row("p50 ms", "p50", "ms")
            row("p99 ms", "p99", "ms")
        row("MB per proxy CPU-s" if bulk else "req per proxy CPU-s", "per_cpu", "rate")
        if any(g[t].get("user_us") is not None for t in PROXIES):
            row("user µs per MB" if bulk else "user µs per request", "user_us", "us")
            row("system µs per MB" if bulk else "system µs per request", "system_us", "us")
        direct = g["direct"].get("rate")
        pd = [fmt(ratio(g[t].get("rate"), direct), "x") for t in PROXIES]
        if direct:
            rows.append(f"|  | proxy/direct ({unit}) | " + " | ".join(pd) + f" | {'1.00x' if direct else 'n/a'} | | |")
        errs = [g[t].get("errors", 0) for t in TARGETS]
        if any(errs):
            rows.append("|  | errors (all rounds) | " + " | ".join(str(e) if (scen, t) in agg else "n/a" for e, t in zip(errs, TARGETS)) + " | | |")
    table = "\n".join(rows)

    mrows = ["| memory | sluice | nginx | haproxy | sluice/nginx | sluice/haproxy |", "|---|---:|---:|---:|---:|---:|"]
    for kind, label in (("idle_rss_kib", "idle RSS after start, MiB"), ("peak_rss_kib", "peak RSS after all runs, MiB")):
        v = [mem.get((kind, t)) for t in PROXIES]
        mrows.append(f"| {label} | " + " | ".join(f"{x:.1f}" if x is not None else "n/a" for x in v)
                     + f" | {fmt(ratio(v[0], v[1]), 'x')} | {fmt(ratio(v[0], v[2]), 'x')} |")
    v = [mem.get(("idle_conn_bytes", t)) for t in PROXIES]
    if any(x is not None for x in v):
        # Stored as bytes: the /1024 above made them KiB.
        label = f"per idle keep-alive connection, KiB ({int(meta.get('idle_conns', 0)):,} held)"
        mrows.append(f"| {label} | " + " | ".join(f"{x:.1f}" if x is not None else "n/a" for x in v)
                     + f" | {fmt(ratio(v[0], v[1]), 'x')} | {fmt(ratio(v[0], v[2]), 'x')} |")
    memtable = "\n".join(mrows)

    scale = None
    sp = os.path.join(a.work, "scale.json")
    if os.path.exists(sp) and os.path.getsize(sp):
        try:
            scale = json.loads(open(sp).read().strip().splitlines()[-1])
        except (ValueError, IndexError):
            scale = None
    srows = []
    if scale:
        srows = ["| scale figure | value | target |", "|---|---:|---:|"]
        srows.append(f"| configuration | {scale['pools']:,} pools, {scale['endpoints']:,} endpoints, {scale['ports']} ports, {scale['file_bytes'] / 1024:.0f} KiB YAML | |")
        if "error" in scale:
            srows.append(f"| error | {scale['error']} | |")
        if "startup_seconds" in scale:
            srows.append(f"| start-up (process start -> /readyz 200) | {scale['startup_seconds'] * 1000:.0f} ms | |")
        if scale.get("initial_apply_seconds") is not None:
            srows.append(f"| initial apply (`sluice_config_apply_seconds_sum`) | {scale['initial_apply_seconds'] * 1000:.1f} ms | |")
        if "loaded_mib" in scale:
            srows.append(f"| RSS with the set loaded (VmRSS / VmHWM) | {scale['loaded_mib']['VmRSS']:.1f} / {scale['loaded_mib']['VmHWM']:.1f} MiB | < 100 MiB |")
        if "after_reloads_mib" in scale:
            srows.append(f"| RSS after the reloads (VmRSS / VmHWM) | {scale['after_reloads_mib']['VmRSS']:.1f} / {scale['after_reloads_mib']['VmHWM']:.1f} MiB | |")
        if "reload_apply_seconds_mean" in scale:
            srows.append(f"| reload, file event -> applied (mean of `sluice_config_apply_seconds` over reloads; includes sluice's reload coalescing wait, 20 ms since 2026-11-27 13:00) | {scale['reload_apply_seconds_mean'] * 1000:.0f} ms | |")
        if "change_to_first_request_median_s" in scale:
            n = len(scale["changes"])
            srows.append(f"| file change -> first request served by the new endpoint (median / min / max of {n}) | "
                         f"{scale['change_to_first_request_median_s'] * 1000:.0f} / {scale['change_to_first_request_min_s'] * 1000:.0f} / {scale['change_to_first_request_max_s'] * 1000:.0f} ms | < 100 ms |")
    scaletable = "\n".join(srows)

    drows = ["| round | scenario | target | rate | p50 ms | p99 ms | proxy CPU-s | backend CPU-s | load tool CPU-s | other CPU-s | errors |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    order = {s: i for i, (s, _, _) in enumerate(SCENARIOS)}
    flat = sorted(((rnd, scen, t, r) for (scen, t), rs in runs.items() for rnd, r in rs),
                  key=lambda x: (x[0], order.get(x[1], 9), TARGETS.index(x[2])))
    backend_max = 0.0
    dur = float(meta.get("duration", "10"))
    for rnd, scen, t, r in flat:
        bcpu = float(r.get("backend_cpu_seconds", 0) or 0)
        backend_max = max(backend_max, bcpu / dur)
        drows.append(f"| {rnd} | {scen} | {t} | {fmt(r.get('rate'), 'rate')} | {fmt(r.get('p50'), 'ms')} | {fmt(r.get('p99'), 'ms')} | "
                     f"{r['cpu']:.2f} | {bcpu:.2f} | {r.get('tool_cpu_seconds', '?')} | {r.get('other_cpu_seconds', '?')} | {r.get('errors', 0)} |")
    detail = "\n".join(drows)

    spread = []
    for scen, title, _ in SCENARIOS:
        if not any((scen, t) in agg for t in TARGETS):
            continue
        parts = [f"{t} {agg[(scen, t)]['min']:,.0f}–{agg[(scen, t)]['max']:,.0f}" for t in TARGETS if (scen, t) in agg]
        spread.append(f"- {scen}: " + "; ".join(parts))

    busy = ""
    others = [float(r.get("other_cpu_seconds", 0) or 0) / dur for _, _, _, r in flat]
    if others and statistics.median(others) > 0.15:
        busy = (f"\n**The machine was shared during this run**: outside the proxy, the backends and the load "
                f"tool, {statistics.median(others):.2f} CPUs (median; max {max(others):.2f}) of {meta.get('nproc')} "
                "were busy during the runs (other users, plus kernel work not charged to a process). Absolute rates "
                "and tail latencies are depressed and noisy; ratios between targets of the same round and the "
                "per-CPU-second figures are the more reliable numbers.\n")
    md = f"""# sluice vs nginx vs HAProxy — {meta.get('date')} ({meta.get('mode')} run)

Command: `{meta.get('command')}` (from the repository root).
{meta.get('rounds')} round(s) of {meta.get('duration')} s per run, targets interleaved and rotated each round;
medians over rounds. Every proxy has {meta.get('workers')} workers/threads and round-robins over the same
3 single-threaded loopback backends (2-byte body). "direct" is the load tool straight at one backend.

| machine | |
|---|---|
| CPU | {meta.get('nproc')} × {meta.get('cpu')} |
| kernel / OS | {meta.get('kernel')} / {meta.get('os')} |
| sluice | {meta.get('sluice')} ({meta.get('rustc')}) |
| nginx / HAProxy | {meta.get('nginx')} / {meta.get('haproxy')} |
| wrk / h2load | {meta.get('wrk')} / {meta.get('h2load')} |
| load average (1/5/15 min) at start / end | {meta.get('loadavg_start')} / {meta.get('loadavg_end')} |
| CPUs busy just before the runs (others) | {meta.get('busy_before_runs', '?')} |
{busy}
## Results

{table}

Ratios are sluice's value divided by the other's: above 1.00x is better for rates and per-CPU
figures, below 1.00x is better for latencies and µs per request. "req per proxy CPU-s" divides the requests served by
the CPU time (user + system, all processes and threads) the proxy used during the run; it is the
figure least sensitive to what else runs on the machine. "user/system µs per request" split that
CPU time (utime and stime in `/proc/PID/stat`) per request served. The backends used at most
{backend_max:.2f} CPU-seconds per second in any run.

{memtable}

RSS is the sum over the proxy's processes (nginx: master + 2 workers, so shared pages count more
than once); peak is VmHWM.

## Scale (sluice only)

{scaletable}

## Spread (min–max of the rate over rounds)

{chr(10).join(spread)}

## Every run

{detail}
"""
    with open(a.out, "w") as f:
        f.write(md)
    print(table)
    print()
    print(memtable)
    if scaletable:
        print()
        print(scaletable)


if __name__ == "__main__":
    main()
