#!/usr/bin/env python3
"""Summarise an h2load --log-file (start_us, status, elapsed_us per line) as '# key=value' lines.

h2load prints only mean/sd of request time; the per-request log gives real p50/p99.
"""
import sys


def main(path: str) -> None:
    times = []
    bad = 0
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            if not parts[1].startswith("2"):
                bad += 1
            times.append(int(parts[2]))
    times.sort()

    def pct(p: float) -> float:
        if not times:
            return float("nan")
        return times[min(len(times) - 1, int(p / 100.0 * len(times)))] / 1000.0

    print(f"# h2_p50_ms={pct(50):.3f}")
    print(f"# h2_p99_ms={pct(99):.3f}")
    print(f"# h2_logged={len(times)}")
    print(f"# h2_non2xx={bad}")


if __name__ == "__main__":
    main(sys.argv[1])
