#!/usr/bin/env bash
# The cost of the access policies alone: the same requests (with the Authorization and Origin
# headers the policy scenario sends) to the plain pool and to the all-policies pool of one
# sluice process, alternating, with sluice's CPU per request from /proc. Unlike the policy row
# of bench/run.sh, both sides carry the same headers, so the difference is the policies' work.
#
# Usage: KEEP_WORK=1 SCENARIOS=policy QUICK=1 bench/run.sh   (prints "scratch kept in DIR")
#        bench/policy-ab.sh DIR [SLUICE_BIN]                 (ROUNDS=3 SECS=5 by default)
# Ports are bench/run.sh's defaults (PORT_BASE 18000): backends 18901-18903, plain pool 18080,
# policy pool 18087. Every run is bounded by wrk's duration.
set -euo pipefail
W=${1:?scratch directory of a KEEP_WORK=1 bench/run.sh}
BIN=${2:-$(cd "$(dirname "$0")/.." && pwd)/target/release/sluice}
ROUNDS=${ROUNDS:-3} SECS=${SECS:-5}
cd "$W"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for p in 18901 18902 18903; do ./benchtool http "$p" "a$p" >/dev/null 2>&1 & pids+=($!); done
"$BIN" serve --config sluice.yaml --admin-listen 127.0.0.1:19998 --log-level warn >/dev/null 2>&1 &
sp=$!; pids+=("$sp")
sleep 1.5
ticks() { awk '{print $14 + $15}' "/proc/$sp/stat"; }
hz=$(getconf CLK_TCK)
for r in $(seq 1 "$ROUNDS"); do
  for port in 18080 18087; do
    t0=$(ticks)
    rps=$(timeout $((SECS + 5)) wrk -t2 -c64 -d"${SECS}s" -H 'Authorization: Basic YmVuY2g6c2VjcmV0' \
      -H 'Origin: https://app.example' "http://127.0.0.1:$port/" | awk '/Requests\/sec/{print $2}')
    t1=$(ticks)
    name=$([[ $port == 18080 ]] && echo plain || echo policies)
    awk -v r="$r" -v n="$name" -v rps="$rps" -v t=$((t1 - t0)) -v s="$SECS" -v hz="$hz" 'BEGIN {
      cpu = t / hz; printf "round %d %-8s %8.0f req/s  sluice %5.2f CPU-s  %7.0f req per CPU-s\n", r, n, rps, cpu, rps * s / cpu }'
  done
done
