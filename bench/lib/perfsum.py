#!/usr/bin/env python3
"""Text summary of one profiled run of bench/run.sh (PERF=1): perf stat counts per request,
the proxy's samples grouped by what they are, and perf report's top symbols.

Inputs: --stat (perf stat -x, output), --report (perf report --no-children --sort dso,sym text),
--script (perf script -F period,ip,sym,dso of a perf record with call chains), --run (the run's raw file, for
the request count and the proxy's CPU from /proc). Groups are shares of samples; "µs/req" is that
share of the proxy's user+system CPU per request (/proc), so the groups of a run add up to it.
"""
import argparse
import collections
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import parse  # noqa: E402  (the same request count as the results table)

MEM = re.compile(r"malloc|free|realloc|calloc|memmove|memcpy|memset|_int_|tcache|unlink_chunk|"
                 r"malloc_consolidate|sysmalloc|cfree|__libc_|mremap|madvise|memalign|_lll_lock", re.I)
CRYPTO_DSO = re.compile(r"libcrypto|libssl|libgnutls|libnettle")
CRYPTO_SYM = re.compile(r"\bring::|ring_core|aws_lc|\brustls::|aes_|_aes|gcm_|ghash|sha256|sha512|x25519|"
                        r"ecp_nistz|chacha|poly1305", re.I)
# Crate of a demangled Rust symbol: the first path that is not core/alloc/std, else the first.
CRATE = re.compile(r"(?<![\w:])([a-z_][a-z0-9_]*)::")
STD = {"core", "alloc", "std", "impl"}

# h2 crate: which part of the protocol a symbol is in (first match wins).
H2_PARTS = [
    ("HPACK", r"h2::hpack"),
    ("flow control, prioritisation", r"flow_control|prioritize|::window|FlowControl|Prioritize"),
    ("frame encode/decode, codec buffers", r"h2::codec|h2::frame|FramedRead|FramedWrite"),
    ("stream store, stream state", r"h2::proto::streams::(store|stream|state|counts|recv|send|streams|buffer)|slab::"),
    ("connection, ping, settings, other", r"h2::"),
]
# Kernel samples by the path they are on, from the call chain (first match wins). System call
# wrappers are often inlined away, so the paths are told by the functions inside them.
KERNEL_PATHS = [
    ("scheduler: context switches (blocking, preemption on return to user)", ("__schedule", "schedule_idle")),
    ("eventfd write (waking another worker thread's event loop)", ("eventfd_write",)),
    ("loopback send (sendto/writev: TCP transmit, runs the receiver's TCP path)",
     ("tcp_sendmsg", "__sys_sendto", "__sys_sendmsg", "sock_write_iter", "__x64_sys_sendto", "__x64_sys_writev", "__x64_sys_write")),
    ("loopback recv (recvfrom/readv: TCP receive, copy out)",
     ("tcp_recvmsg", "__sys_recvfrom", "__sys_recvmsg", "sock_read_iter", "__x64_sys_recvfrom", "__x64_sys_readv", "__x64_sys_read")),
    ("epoll_wait", ("do_epoll_wait", "ep_poll", "__x64_sys_epoll_wait", "__x64_sys_epoll_pwait")),
    ("epoll_ctl", ("do_epoll_ctl", "__x64_sys_epoll_ctl")),
    ("futex (thread park/unpark, lock waits)", ("do_futex", "__x64_sys_futex")),
    ("loopback delivery in softirq outside a send (interrupt return)", ("net_rx_action",)),
    ("page faults", ("asm_exc_page_fault", "exc_page_fault")),
    ("timer and other interrupts", ("asm_sysvec_apic_timer_interrupt", "hrtimer_interrupt", "asm_sysvec_reschedule_ipi", "asm_common_interrupt")),
    ("system call entry/exit", ("do_syscall_64", "entry_SYSCALL_64_after_hwframe", "syscall_exit_to_user_mode")),
]
WAKE = ("try_to_wake_up", "sock_def_readable", "ep_poll_callback", "__wake_up_common", "__wake_up_sync_key")
SYSCALL = re.compile(r"^(?:__x64_sys|__ia32_sys|__do_sys|__se_sys|ksys)_(\w+)$")


def samples(path):
    """Yields (period, frames) with frames [(sym, dso)] leaf first."""
    period, frames = None, []
    for line in open(path, errors="replace"):
        s = line.strip()
        if not s:
            if period is not None:
                yield period, frames
            period, frames = None, []
            continue
        if period is None:  # a sample's first line: its period, and its frame if there is no chain
            m = re.match(r"(\d+)", s)
            period = int(m.group(1)) if m else 1
            rest = s[m.end():].strip() if m else s
            if rest:  # no call chain: "period ip sym (dso)" on one line
                frames.append(frame(rest))
            continue
        frames.append(frame(s))
    if period is not None:
        yield period, frames


def frame(s):
    m = re.match(r"[0-9a-f]+\s+(.*?)\s+\(([^()]*)\)$", s)
    if not m:
        return (s, "")
    sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1))
    return (sym, m.group(2))


def kernel_group(frames):
    names = {f[0] for f in frames}
    for label, funcs in KERNEL_PATHS:
        if any(f in names for f in funcs):
            return label
    for n in names:
        m = SYSCALL.match(n)
        if m:
            return f"other system calls ({m.group(1)})"
    return "other kernel"


def crate_of(sym):
    crates = CRATE.findall(sym)
    for c in crates:
        if c not in STD:
            return c
    return crates[0] if crates else None


def user_group(sym, dso, own_dso):
    base = os.path.basename(dso)
    if "libc.so" in base or "libc-" in base:
        if MEM.search(sym):
            return "libc malloc/free/memmove"
        return "libc memcmp/strlen/other" if re.search(r"mem|str", sym) else "libc other"
    if CRYPTO_DSO.search(base) or (base == own_dso and CRYPTO_SYM.search(sym)):
        return "crypto"
    if base == own_dso:
        return "own code"
    if base == "[vdso]":
        return "vDSO (clock reads)"
    return "other libraries"


def sluice_part(sym):
    """sluice's own binary split by crate, and h2 by part of the protocol."""
    if MEM.search(sym) and not CRATE.search(sym):
        return "malloc/memmove (inlined or Rust-side)"
    crate = crate_of(sym)
    if crate == "h2":
        for label, pat in H2_PARTS:
            if re.search(pat, sym):
                return f"h2: {label}"
    if crate in ("hyper", "hyper_util"):
        return "hyper: " + ("HTTP/2 server/client dispatch" if "proto::h2" in sym else
                            "HTTP/1 dispatch" if "proto::h1" in sym else "other")
    if crate == "tokio":
        if re.search(r"tokio::time|runtime::time", sym):
            return "tokio: timers"
        if re.search(r"tokio::sync", sym):
            return "tokio: sync (Notify, semaphores, channels)"
        if re.search(r"scheduler|task::|park|context|coop", sym):
            return "tokio: task scheduling"
        if re.search(r"io::|driver|registration|poll_evented", sym):
            return "tokio: I/O driver"
        return "tokio: other"
    if crate == "sluice":
        return "sluice: own request path"
    if crate in STD or crate is None:
        return "std/core/alloc (inlined: moves, drops, hashing)"
    return f"{crate} crate"


# Allocator and copy wrappers skipped when naming who called malloc/free/memmove.
WRAPPER = re.compile(r"^(__rust_|__rdl_|alloc::alloc::|alloc::raw_vec::|<alloc::raw_vec|core::ptr::copy|"
                     r"alloc::vec::Vec<T,A>::(reserve|extend|push)|<alloc::alloc::Global|core::intrinsics|\[unknown\])")


def mem_caller(frames, own_path):
    """'caller < its caller' of a libc malloc/free/memmove sample, from the first frames in own code."""
    own = [f[0] for f in frames[1:] if f[1] == own_path and not WRAPPER.match(f[0])]
    if not own:
        return None
    return " < ".join(trim(x) for x in own[:2])


def trim(sym, width=110):
    sym = re.sub(r"<[^<>]*(?:<[^<>]*>[^<>]*)*>(?=::)", "<..>", sym) if len(sym) > width else sym
    return sym if len(sym) <= width else sym[: width - 3] + "..."


def stat_counts(path):
    out = {}
    if not path or not os.path.exists(path):
        return out
    for line in open(path):
        f = line.strip().split(",")
        if len(f) < 3 or line.startswith("#"):
            continue
        try:
            out[f[2]] = float(f[0])
        except ValueError:
            out[f[2]] = None  # <not supported> / <not counted>
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--stat")
    ap.add_argument("--report")
    ap.add_argument("--script")
    ap.add_argument("--run")
    a = ap.parse_args()
    own_dso = {"sluice": "sluice", "nginx": "nginx", "haproxy": "haproxy"}.get(a.target, a.target)
    run = parse(a.run) if a.run and os.path.exists(a.run) else {}
    count = run.get("count")
    user = float(run.get("proxy_user_seconds", 0) or 0)
    system = float(run.get("proxy_system_seconds", 0) or 0)
    per_req = (user + system) * 1e6 / count if count else None

    print(f"# perf summary: {os.path.basename(a.run or '')} target={a.target}")
    print(f"requests={count} rate={run.get('rate')} proxy_user_seconds={user:.3f} proxy_system_seconds={system:.3f} "
          f"loadavg_before={run.get('loadavg_before')} loadavg_after={run.get('loadavg_after')} other_cpu_seconds={run.get('other_cpu_seconds')}")
    if count:
        print(f"per request (/proc): user {user * 1e6 / count:.2f} µs, system {system * 1e6 / count:.2f} µs, total {per_req:.2f} µs")
    st = stat_counts(a.stat)
    if st:
        print("\n## perf stat (per request)")
        for ev in ("task-clock", "user_time", "system_time", "context-switches", "cpu-migrations", "page-faults", "cycles", "instructions"):
            if ev not in st:
                continue
            v = st[ev]
            if v is None:
                print(f"{ev}: not supported")
                continue
            if ev == "task-clock":  # msec
                print(f"{ev}: {v:.1f} ms" + (f", {v * 1000 / count:.2f} µs/req" if count else ""))
            elif ev in ("user_time", "system_time"):  # ns
                print(f"{ev}: {v / 1e9:.3f} s" + (f", {v / 1e3 / count:.2f} µs/req" if count else ""))
            else:
                print(f"{ev}: {v:,.0f}" + (f", {v / count:.3f}/req" if count else ""))

    groups, kgroups, parts = collections.Counter(), collections.Counter(), collections.Counter()
    callers, mem_total, own_path, memsyms = collections.Counter(), 0, None, collections.Counter()
    sched, wake, total, n = 0, 0, 0, 0
    if a.script and os.path.exists(a.script):
        for period, frames in samples(a.script):
            if not frames:
                continue
            total += period
            n += 1
            sym, dso = frames[0]
            names = [f[0] for f in frames]
            if dso.startswith("[kernel"):
                groups["kernel"] += period
                kgroups[kernel_group(frames)] += period
                if "__schedule" in names:
                    sched += period
                if any(n in WAKE for n in names):
                    wake += period
                continue
            g = user_group(sym, dso, own_dso)
            groups[g] += period
            if own_path is None and os.path.basename(dso) == own_dso:
                own_path = dso
            if g == "libc malloc/free/memmove":
                mem_total += period
                memsyms["memmove/memcpy/memset" if re.search(r"mem(move|cpy|set)", sym) else "malloc/free (incl. arena locks)"] += period
                callers[tuple(frames)] += period
            if a.target == "sluice" and g == "own code":
                parts[sluice_part(sym)] += period

    def show(title, counter, denom):
        print(f"\n## {title}")
        print("| group | share of samples | µs/req |")
        print("|---|---:|---:|")
        for k, v in counter.most_common():
            share = v / denom if denom else 0
            us = f"{share * per_req:.2f}" if per_req else "n/a"
            print(f"| {k} | {share * 100:.1f}% | {us} |")

    if total:
        print(f"\nsamples: {n} (perf record -F 999, weighted by period)")
        show("grouped (leaf sample: kernel / proxy's own code / libc malloc-free-memmove / crypto / other)", groups, total)
        show("libc malloc/free/memmove split (share of all samples)", memsyms, total)
        show("kernel samples by path, from the call chain (share of all samples)", kgroups, total)
        print(f"\nof all samples: under __schedule (context switch) {sched / total * 100:.1f}%, "
              f"waking another task (sock_def_readable, ep_poll_callback, try_to_wake_up) {wake / total * 100:.1f}%")
        if parts:
            show("sluice's own binary by crate and part (share of all samples)", parts, total)
        named = collections.Counter()
        for frames, v in callers.items():
            c = mem_caller(list(frames), own_path)
            if c:
                named[c] += v
        if named:  # only with user-space call chains (DWARF): sluice
            print(f"\n## who calls libc malloc/free/memmove ({sum(named.values()) / mem_total * 100:.0f}% of those samples named)")
            print("| caller < its caller | share of all samples | µs/req |")
            print("|---|---:|---:|")
            for k, v in named.most_common(25):
                us = f"{v / total * per_req:.2f}" if per_req else "n/a"
                print(f"| `{k}` | {v / total * 100:.1f}% | {us} |")
    if a.report and os.path.exists(a.report):
        print("\n## perf report --no-children --sort dso,sym --percent-limit 0.5")
        for line in open(a.report, errors="replace"):
            if line.startswith("#") or not line.strip():
                continue
            print(line.rstrip()[:200])


if __name__ == "__main__":
    main()
