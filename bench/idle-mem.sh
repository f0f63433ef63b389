#!/usr/bin/env bash
# Memory per idle connection: sluice, nginx and HAProxy, for plain HTTP/1.1 keep-alive, h2c
# (prior knowledge) and HTTPS (TLS 1.3, HTTP/1.1 keep-alive).
#
#   bench/idle-mem.sh                           all modes, all three proxies, 4,000 connections
#   SLUICE_BIN=target/release/sluice MODES=h1 TARGETS=sluice bench/idle-mem.sh
#
# For each mode and proxy: a fresh proxy process (the same configuration files as bench/run.sh),
# a warm-up of 64 connections in that mode (closed again), its RSS, then IDLE_CONNS connections
# that each had one answer (bench/lib/idleconns.py, 64 requests in flight at most) held idle,
# its RSS again; the growth divided by the connections answered is the figure. REPEAT (default
# 1) runs everything that many times. Knobs: SLUICE_BIN (skip the build), IDLE_CONNS, MODES,
# TARGETS, REPEAT, PORT_BASE (default 19000). Every wait is bounded; a trap stops every process
# the script started.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
IDLE_CONNS=${IDLE_CONNS:-4000}
read -ra MODES <<<"${MODES:-h1 h2 tls}"
read -ra TARGETS <<<"${TARGETS:-sluice nginx haproxy}"
REPEAT=${REPEAT:-1}
PORT_BASE=${PORT_BASE:-19000}
WORKERS=2

log() { printf '[idle-mem %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=lib/procs.sh
. "$HERE/lib/procs.sh"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
((IDLE_CONNS + 200 < $(ulimit -n))) || die "ulimit -n $(ulimit -n) is too low for $IDLE_CONNS connections"
for tool in cc python3 openssl curl; do command -v $tool >/dev/null || die "$tool is missing"; done

WORK=$(mktemp -d /tmp/sluice-idle-mem.XXXXXX)
PIDS=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_pids TERM 50 "${PIDS[@]}"
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_ports
port_for() { # port_for MODE TARGET
    case "$1:$2" in
    h1:sluice | h2:sluice) echo $SLUICE_HTTP ;;
    tls:sluice) echo $SLUICE_TLS ;;
    h1:nginx) echo $NGINX_HTTP ;;
    h2:nginx) echo $NGINX_H2 ;;
    tls:nginx) echo $NGINX_TLS ;;
    h1:haproxy) echo $HAPROXY_HTTP ;;
    h2:haproxy) echo $HAPROXY_H2 ;;
    tls:haproxy) echo $HAPROXY_TLS ;;
    esac
}
for p in $BE1 $BE2 $BE3 $SLUICE_HTTP $SLUICE_TLS $SLUICE_ADMIN $NGINX_HTTP $NGINX_H2 $NGINX_TLS \
    $HAPROXY_HTTP $HAPROXY_H2 $HAPROXY_TLS; do
    port_open "$p" && die "port $p is in use (set PORT_BASE to move every port)"
done

cc -O2 -pthread -o "$WORK/benchtool" "$HERE/benchtool.c"
if [[ -n ${SLUICE_BIN:-} ]]; then
    SLUICE=$SLUICE_BIN
else
    log "cargo build --release --locked --bin sluice"
    (cd "$ROOT" && cargo build --release --locked --quiet --bin sluice)
    SLUICE=${CARGO_TARGET_DIR:-$ROOT/target}/release/sluice
fi
[[ -x $SLUICE ]] || die "no sluice binary at $SLUICE"
cp "$SLUICE" "$WORK/sluice"
SLUICE=$WORK/sluice

# shellcheck source=lib/configs.sh
. "$HERE/lib/configs.sh"
DIR=$WORK/nginx
mkdir -p "$DIR/tmp"
make_certificate
# The policy ports are not measured here: a one-entry allow list keeps the files valid.
SLUICE_ALLOW='["127.0.0.0/8"]'
printf 'allow 127.0.0.0/8;\ndeny all;\n' >"$WORK/nginx-allow.conf"
echo 127.0.0.0/8 >"$WORK/allow.lst"
printf 'bench:{SHA}%s\n' "$(printf secret | openssl dgst -binary -sha1 | base64)" >"$WORK/htpasswd"
NGINX_STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
render "$HERE/conf/nginx.conf.in" "$DIR/nginx.conf"
if nginx -V 2>&1 | grep -q -- '--with-stream '; then sed -i '/^load_module/d' "$DIR/nginx.conf"; fi
render "$HERE/conf/haproxy.cfg.in" "$WORK/haproxy.cfg"
render "$HERE/conf/sluice.yaml.in" "$WORK/sluice.yaml"

i=0
for p in $BE1 $BE2 $BE3; do
    i=$((i + 1))
    "$WORK/benchtool" http "$p" "a$i" & PIDS+=($!)
    wait_port "$p" $!
done

# start TARGET: starts a fresh proxy; sets TARGET_PID (and TARGET_PIDS, every process of it).
start() {
    case $1 in
    sluice)
        "$SLUICE" serve --config "$WORK/sluice.yaml" --workers $WORKERS --bind 127.0.0.1 \
            --admin-listen "127.0.0.1:$SLUICE_ADMIN" --log-level warn 2>>"$WORK/sluice.log" &
        ;;
    nginx) nginx -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/error.log" 2>>"$DIR/error.log" & ;;
    haproxy) haproxy -db -f "$WORK/haproxy.cfg" >>"$WORK/haproxy.log" 2>&1 & ;;
    esac
    TARGET_PID=$!
    PIDS+=($TARGET_PID)
    for m in "${MODES[@]}"; do wait_port "$(port_for "$m" "$1")" $TARGET_PID; done
    TARGET_PIDS="$TARGET_PID $(pgrep -P "$TARGET_PID" | tr "\n" " " || true)"
}
rss_kib() { # rss_kib PID...: VmRSS summed
    local total=0 v pid
    for pid in "$@"; do
        v=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo $total
}

printf '| mode | proxy | connections answered | RSS before, KiB | RSS held, KiB | bytes per idle connection |\n'
printf '|---|---|---:|---:|---:|---:|\n'
for _ in $(seq "$REPEAT"); do
    for mode in "${MODES[@]}"; do
        for t in "${TARGETS[@]}"; do
            start "$t"
            port=$(port_for "$mode" "$t")
            # Warm-up: one-time allocations (upstream connections, TLS state, free lists).
            timeout 30 python3 "$HERE/lib/idleconns.py" "$port" 64 0 "$mode" >/dev/null || true
            sleep 0.5
            # shellcheck disable=SC2086
            before=$(rss_kib $TARGET_PIDS)
            out=$WORK/held-$mode-$t.txt
            : >"$out"
            timeout 180 python3 "$HERE/lib/idleconns.py" "$port" "$IDLE_CONNS" 30 "$mode" >"$out" &
            holder=$!
            for _ in $(seq 1500); do [[ -s $out ]] && break; sleep 0.1; done
            sleep 1
            # shellcheck disable=SC2086
            after=$(rss_kib $TARGET_PIDS)
            kill $holder 2>/dev/null || true
            wait $holder 2>/dev/null || true
            answered=$(head -1 "$out" 2>/dev/null || true)
            answered=${answered:-0}
            per=n/a
            ((answered > 0)) && per=$(((after - before) * 1024 / answered))
            printf '| %s | %s | %s/%s | %s | %s | %s |\n' "$mode" "$t" "$answered" "$IDLE_CONNS" "$before" "$after" "$per"
            stop_pids TERM 50 "$TARGET_PID" # at most 5 s, then KILL
        done
    done
done
