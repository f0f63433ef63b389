#!/usr/bin/env bash
# The cost of a large routing table: keep-alive requests to a port with one route and to a port
# with 10,000 routes (1,000 hosts x 10 path prefixes, each route its own pool), in one sluice
# process, alternating, with sluice's CPU per request from /proc. Issue 19's target: the big
# table within 5% of the single route.
#
# Usage: bench/routes-ab.sh [SLUICE_BIN]     (ROUNDS=3 SECS=5 HOSTS=1000 PATHS=10 by default)
# Ports: backends 28951-28953, one route 28180, the big table 28181, admin 29997; every run is
# bounded by wrk's duration. Regular-expression routes cannot be written in a BackendPool file
# (they come from Ingress and Gateway API objects); `cargo bench --bench dataplane`
# (`routing_10000_routes`) measures lookups with 1,000 of them.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$HERE/../target/release/sluice}
ROUNDS=${ROUNDS:-3} SECS=${SECS:-5} HOSTS=${HOSTS:-1000} PATHS=${PATHS:-10}
W=$(mktemp -d /tmp/sluice-routes-ab.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$W"' EXIT
cc -O2 -pthread -o "$W/benchtool" "$HERE/benchtool.c"
for p in 28951 28952 28953; do "$W/benchtool" http "$p" "a$p" >/dev/null 2>&1 & pids+=($!); done

# pool NAME PORT HOSTS PATH: one BackendPool document over the three backends.
pool() {
  printf -- '---\napiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {name: %s, namespace: bench}\n' "$1"
  printf 'spec:\n  listener: {port: %s, hosts: %s, pathPrefix: %s}\n' "$2" "$3" "$4"
  printf '  endpoints: [{address: "127.0.0.1:28951"}, {address: "127.0.0.1:28952"}, {address: "127.0.0.1:28953"}]\n'
}
width=${#HOSTS}
{
  pool one 28180 '[]' /
  for h in $(seq -f "%0${width}g" 0 $((HOSTS - 1))); do
    for p in $(seq 0 $((PATHS - 1))); do pool "r$h-$p" 28181 "[h$h.routes.test]" "/p$p"; done
  done
} >"$W/sluice.yaml"
"$BIN" serve --config "$W/sluice.yaml" --admin-listen 127.0.0.1:29997 --log-level warn >"$W/sluice.log" 2>&1 &
sp=$!; pids+=("$sp")
t0=$(date +%s%N)
for _ in $(seq 600); do curl -sf -o /dev/null http://127.0.0.1:29997/readyz && break; sleep 0.1; done
ready_ms=$((($(date +%s%N) - t0) / 1000000))
# The host and path in the middle of the table: no early exit helps it.
mid=$(printf '%0*d' "$width" $((HOSTS / 2)))
host="h$mid.routes.test" path="/p$((PATHS / 2))/x"
got=$(curl -s --max-time 2 -H "Host: $host" "http://127.0.0.1:28181$path" || true)
[[ $got =~ ^a289 ]] || {
  echo "the big table does not route $host$path (got: $got); sluice log:" >&2
  tail -5 "$W/sluice.log" >&2
  exit 1
}
echo "# $((HOSTS * PATHS)) routes on port 28181, $(wc -c <"$W/sluice.yaml") bytes of YAML; ready in ${ready_ms} ms; sluice RSS $(awk '/VmRSS/{print $2, $3}' "/proc/$sp/status")"
ticks() { awk '{print $14 + $15}' "/proc/$sp/stat"; }
hz=$(getconf CLK_TCK)
for r in $(seq 1 "$ROUNDS"); do
  for port in 28180 28181; do
    t0=$(ticks)
    rps=$(timeout $((SECS + 5)) wrk -t2 -c64 -d"${SECS}s" -H "Host: $host" "http://127.0.0.1:$port$path" |
      awk '/Requests\/sec/{print $2}')
    t1=$(ticks)
    name=$([[ $port == 28180 ]] && echo "1 route" || echo "$((HOSTS * PATHS)) routes")
    awk -v r="$r" -v n="$name" -v rps="$rps" -v t=$((t1 - t0)) -v s="$SECS" -v hz="$hz" 'BEGIN {
      cpu = t / hz; printf "round %d %-13s %8.0f req/s  sluice %5.2f CPU-s  %7.0f req per CPU-s\n", r, n, rps, cpu, rps * s / cpu }'
  done
done
