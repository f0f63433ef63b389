#!/usr/bin/env bash
# Side-by-side benchmark: sluice vs nginx vs HAProxy vs a direct connection, on loopback.
#
#   bench/run.sh            full run: ROUNDS rounds (default 3) of DURATION-second runs (default 10)
#   QUICK=1 bench/run.sh    about a minute: 1 round of 2-second runs
#
# Environment knobs: ROUNDS, DURATION (seconds), PORT_BASE (default 18000), SLUICE_BIN (skip the
# cargo build and use this binary), BACKEND_BIN (likewise for bench-backend, the gRPC and HTTPS
# backends), SCENARIOS (a subset, e.g. "h1 grpc"), SKIP_SCALE=1, KEEP_WORK=1 (keep the scratch directory),
# NO_INSTALL=1 (fail instead of running apt-get), RESULTS_DIR (default bench/results),
# WAIT_IDLE (seconds to wait, at most, for other load to go away first: 180 full, 0 QUICK),
# PERF=1 (profile the proxies: during each sluice/nginx/haproxy measurement, `perf stat` and
# `perf record` with call chains on the proxy's pids; a text summary of each, lib/perfsum.py, is
# saved beside the results file in <results file>-perf/, the perf.data files stay in the scratch
# directory; the profilers take CPU from the same 2 cores, so rates of a PERF run are lower).
# See bench/README.md for what each scenario measures.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COMMAND=
for v in QUICK ROUNDS DURATION PORT_BASE SLUICE_BIN SCENARIOS SKIP_SCALE IDLE_CONNS PERF; do
    [[ -n ${!v:-} ]] && COMMAND+="$v=${!v} "
done
COMMAND+="bench/run.sh"
ROOT=$(dirname "$HERE")
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    MODE=quick
    ROUNDS=${ROUNDS:-1}
    DURATION=${DURATION:-2}
    SCALE_CHANGES=${SCALE_CHANGES:-3}
else
    MODE=full
    ROUNDS=${ROUNDS:-3}
    DURATION=${DURATION:-10}
    SCALE_CHANGES=${SCALE_CHANGES:-5}
fi
PORT_BASE=${PORT_BASE:-18000}
PERF=${PERF:-0}
RESULTS_DIR=${RESULTS_DIR:-$HERE/results}
WORKERS=2        # every proxy: 2 workers / threads
CONNS=64         # wrk -c / concurrent streams
H2_CONNS=16      # h2load -c; with H2_STREAMS streams each = 64 requests in flight
H2_STREAMS=4
BULK_CONNS=4     # parallel TCP bulk streams
IDLE_CONNS=${IDLE_CONNS:-4000}  # idle keep-alive connections held for the memory figure

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=lib/procs.sh
. "$HERE/lib/procs.sh"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true   # proxies are configured for <= 8,000 connections

# ------------------------------------------------------------------ scratch space and cleanup
WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
PIDS=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    # Bounded wait (5 s) for a clean exit, then SIGKILL whatever is left.
    stop_pids TERM 50 "${PIDS[@]}"
    if [[ ${KEEP_WORK:-0} == 1 ]]; then log "scratch kept in $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ dependencies
need=()
for pair in wrk:wrk nginx:nginx haproxy:haproxy h2load:nghttp2-client cc:gcc curl:curl python3:python3 openssl:openssl; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[[ -f /usr/include/openssl/ssl.h ]] || need+=(libssl-dev) # tlsload.c
[[ $PERF == 1 ]] && ! command -v perf >/dev/null 2>&1 && need+=(linux-perf)
# Debian ships nginx's stream module as a separate package.
NGINX_STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
if ! command -v nginx >/dev/null 2>&1 || ! nginx -V 2>&1 | grep -q -- '--with-stream '; then
    [[ -f $NGINX_STREAM_MODULE ]] || need+=(libnginx-mod-stream)
fi
if ((${#need[@]})); then
    [[ ${NO_INSTALL:-0} == 1 ]] && die "missing packages: ${need[*]}"
    log "installing ${need[*]}"
    SUDO=; [[ $(id -u) == 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The Debian packages may start system services; we never touch them and use our own ports.

# ------------------------------------------------------------------ ports
bench_ports
for p in $BE1 $BE2 $BE3 $SRC1 $SRC2 $SRC3 $GB1 $GB2 $GB3 $TB1 $TB2 $TB3 \
    $SLUICE_GRPC $NGINX_GRPC $HAPROXY_GRPC $SLUICE_TLSUP $NGINX_TLSUP $HAPROXY_TLSUP \
    $SLUICE_POLICY $NGINX_POLICY $HAPROXY_POLICY $SLUICE_HTTP $SLUICE_TCPCONN $SLUICE_BULK $SLUICE_ADMIN \
    $SLUICE_TLS $NGINX_TLS $HAPROXY_TLS \
    $NGINX_HTTP $NGINX_H2 $NGINX_TCPCONN $NGINX_BULK $HAPROXY_HTTP $HAPROXY_H2 $HAPROXY_TCPCONN \
    $HAPROXY_BULK $SCALE_ADMIN $(seq $SCALE_PORT_BASE $((SCALE_PORT_BASE + 9))); do
    port_open "$p" && die "port $p is in use (set PORT_BASE to move every port)"
done

# ------------------------------------------------------------------ build
cc -O2 -pthread -o "$WORK/benchtool" "$HERE/benchtool.c"
cc -O2 -pthread -o "$WORK/tlsload" "$HERE/tlsload.c" -lssl -lcrypto || die "cannot build tlsload (libssl-dev)"
if [[ -n ${SLUICE_BIN:-} ]]; then
    SLUICE=$SLUICE_BIN
else
    log "cargo build --release --locked"
    (cd "$ROOT" && cargo build --release --locked --quiet)
    SLUICE=${CARGO_TARGET_DIR:-$ROOT/target}/release/sluice
fi
[[ -x $SLUICE ]] || die "no sluice binary at $SLUICE"
cp "$SLUICE" "$WORK/sluice"   # the bench runs this copy: a concurrent rebuild cannot swap it
SLUICE=$WORK/sluice
if [[ -n ${BACKEND_BIN:-} ]]; then
    BACKEND=$BACKEND_BIN
else
    log "cargo build --release --locked --example bench-backend"
    (cd "$ROOT" && cargo build --release --locked --quiet --example bench-backend)
    BACKEND=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench-backend
fi
[[ -x $BACKEND ]] || die "no bench-backend binary at $BACKEND"
cp "$BACKEND" "$WORK/bench-backend"

# ------------------------------------------------------------------ configuration files
# shellcheck source=lib/configs.sh
. "$HERE/lib/configs.sh"
DIR=$WORK/nginx
mkdir -p "$DIR/tmp" "$WORK/raw" "$WORK/perf"
make_certificate
# The tlska client (wrk, OpenSSL) offers TLS 1.3 with AES-128-GCM only, so all three proxies run
# the same record protection (left to the servers, nginx would follow wrk's AES-256 preference).
cat >"$WORK/openssl-aes128.cnf" <<'EOF'
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_module
[ssl_module]
system_default = client_tls
[client_tls]
MinProtocol = TLSv1.3
Ciphersuites = TLS_AES_128_GCM_SHA256
EOF
# One gRPC request for h2load: a length-prefixed EchoRequest {message: "hi"}.
printf '\x00\x00\x00\x00\x04\x0a\x02hi' >"$WORK/grpc.bin"
# Access policies, the same in all three proxies: an allow list of 10,000 CIDRs (9,999 that
# never match, then loopback), a rate limit no client reaches, a 1 MiB body limit, CORS for one
# origin, and basic auth (user bench, password secret; {SHA} in the htpasswd file).
ALLOW_CIDRS=$(for i in $(seq 0 9998); do echo "10.$((i / 256)).$((i % 256)).0/24"; done; echo 127.0.0.0/8)
SLUICE_ALLOW=$(printf '"%s", ' $ALLOW_CIDRS)
SLUICE_ALLOW="[${SLUICE_ALLOW%, }]"
{ printf 'allow %s;\n' $ALLOW_CIDRS; echo 'deny all;'; } >"$WORK/nginx-allow.conf"
printf '%s\n' $ALLOW_CIDRS >"$WORK/allow.lst"
printf 'bench:{SHA}%s\n' "$(printf secret | openssl dgst -binary -sha1 | base64)" >"$WORK/htpasswd"
if nginx -V 2>&1 | grep -q -- '--with-stream '; then NGINX_STREAM_MODULE=; fi
render "$HERE/conf/nginx.conf.in" "$DIR/nginx.conf"
[[ -z $NGINX_STREAM_MODULE ]] && sed -i '/^load_module/d' "$DIR/nginx.conf"
render "$HERE/conf/haproxy.cfg.in" "$WORK/haproxy.cfg"
render "$HERE/conf/sluice.yaml.in" "$WORK/sluice.yaml"

# ------------------------------------------------------------------ start everything
# Backends: one single-threaded epoll process per port (so each backend uses at most one core's
# worth of one thread); bodies a1/a2/a3 tell them apart. Bulk sources: one thread per connection.
i=0
for p in $BE1 $BE2 $BE3; do
    i=$((i + 1))
    "$WORK/benchtool" http "$p" "a$i" & PIDS+=($!); eval "BE${i}_PID=$!"
done
BACKEND_PIDS="$BE1_PID $BE2_PID $BE3_PID"
for p in $SRC1 $SRC2 $SRC3; do
    "$WORK/benchtool" source "$p" & PIDS+=($!); BACKEND_PIDS+=" $!"; SRC_PID=$!
done
# gRPC (h2c) and HTTPS backends, one thread each too; bodies g1/g2/g3 and t1/t2/t3.
i=0
for p in $GB1 $GB2 $GB3; do
    i=$((i + 1))
    "$WORK/bench-backend" grpc "$p" "g$i" & PIDS+=($!); BACKEND_PIDS+=" $!"; GB_PID=$!
done
i=0
for p in $TB1 $TB2 $TB3; do
    i=$((i + 1))
    "$WORK/bench-backend" https "$p" "t$i" "$WORK/tls.crt" "$WORK/tls.key" & PIDS+=($!); BACKEND_PIDS+=" $!"; TB_PID=$!
done

"$SLUICE" serve --config "$WORK/sluice.yaml" --workers $WORKERS --bind 127.0.0.1 \
    --admin-listen "127.0.0.1:$SLUICE_ADMIN" --log-level warn 2>"$WORK/sluice.log" &
SLUICE_PID=$!; PIDS+=($SLUICE_PID)
nginx -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/error.log" 2>>"$DIR/error.log" &
NGINX_PID=$!; PIDS+=($NGINX_PID)
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!; PIDS+=($HAPROXY_PID)

for p in $BE1 $BE2 $BE3; do wait_port "$p" "$BE3_PID"; done
for p in $SRC1 $SRC2 $SRC3; do wait_port "$p" "$SRC_PID"; done
for p in $GB1 $GB2 $GB3; do wait_port "$p" "$GB_PID"; done
for p in $TB1 $TB2 $TB3; do wait_port "$p" "$TB_PID"; done
for p in $SLUICE_HTTP $SLUICE_TCPCONN $SLUICE_BULK $SLUICE_TLS $SLUICE_GRPC $SLUICE_TLSUP $SLUICE_ADMIN; do wait_port "$p" $SLUICE_PID; done
for p in $NGINX_HTTP $NGINX_H2 $NGINX_TCPCONN $NGINX_BULK $NGINX_TLS $NGINX_GRPC $NGINX_TLSUP; do wait_port "$p" $NGINX_PID; done
for p in $HAPROXY_HTTP $HAPROXY_H2 $HAPROXY_TCPCONN $HAPROXY_BULK $HAPROXY_TLS $HAPROXY_GRPC $HAPROXY_TLSUP; do wait_port "$p" $HAPROXY_PID; done

# pids_of TARGET: every process whose CPU and memory count for that target.
pids_of() {
    case $1 in
    sluice) echo "$SLUICE_PID" ;;
    nginx) echo "$NGINX_PID" $(pgrep -P "$NGINX_PID" | tr '\n' ' ') ;;
    haproxy) echo "$HAPROXY_PID" ;;
    direct) echo "" ;;
    esac
}
# cpu_ticks PID...: utime+stime (clock ticks) summed over the processes (all their threads).
cpu_ticks() {
    local total=0 pid stat rest
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        # shellcheck disable=SC2086
        set -- $rest
        total=$((total + ${12} + ${13}))
    done
    echo $total
}
# cpu_ticks_split PID...: "utime stime" (clock ticks), each summed over the processes.
cpu_ticks_split() {
    local user=0 system=0 pid stat rest
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        # shellcheck disable=SC2086
        set -- $rest
        user=$((user + ${12})); system=$((system + ${13}))
    done
    echo "$user $system"
}
# mem_kib FIELD PID...: a /proc/PID/status field (VmRSS, VmHWM) summed over the processes.
mem_kib() {
    local field=$1 total=0 v
    shift
    for pid in "$@"; do
        v=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo $total
}

port_for() { # port_for SCENARIO TARGET
    case "$1:$2" in
    h1:sluice | close:sluice | h2:sluice) echo $SLUICE_HTTP ;;
    h1:nginx | close:nginx) echo $NGINX_HTTP ;;
    h1:haproxy | close:haproxy) echo $HAPROXY_HTTP ;;
    h2:nginx) echo $NGINX_H2 ;;
    h2:haproxy) echo $HAPROXY_H2 ;;
    tcpconn:sluice) echo $SLUICE_TCPCONN ;;
    tcpconn:nginx) echo $NGINX_TCPCONN ;;
    tcpconn:haproxy) echo $HAPROXY_TCPCONN ;;
    bulk:sluice) echo $SLUICE_BULK ;;
    bulk:nginx) echo $NGINX_BULK ;;
    bulk:haproxy) echo $HAPROXY_BULK ;;
    tls:sluice | tlsfull:sluice | tlska:sluice) echo $SLUICE_TLS ;;
    tls:nginx | tlsfull:nginx | tlska:nginx) echo $NGINX_TLS ;;
    tls:haproxy | tlsfull:haproxy | tlska:haproxy) echo $HAPROXY_TLS ;;
    grpc:sluice) echo $SLUICE_GRPC ;;
    grpc:nginx) echo $NGINX_GRPC ;;
    grpc:haproxy) echo $HAPROXY_GRPC ;;
    grpc:direct) echo $GB1 ;;
    tlsup:sluice) echo $SLUICE_TLSUP ;;
    tlsup:nginx) echo $NGINX_TLSUP ;;
    tlsup:haproxy) echo $HAPROXY_TLSUP ;;
    tlsup:direct) echo $TB1 ;;
    policy:sluice) echo $SLUICE_POLICY ;;
    policy:nginx) echo $NGINX_POLICY ;;
    policy:haproxy) echo $HAPROXY_POLICY ;;
    *:direct) if [[ $1 == bulk ]]; then echo $SRC1; else echo $BE1; fi ;;
    esac
}
# Sanity: every proxy answers and rotates over the backends.
for t in "sluice $SLUICE_HTTP" "nginx $NGINX_HTTP" "haproxy $HAPROXY_HTTP"; do
    set -- $t
    # 12 new connections: each worker keeps its own round-robin position.
    seen=$(for _ in $(seq 12); do curl -s --max-time 2 "http://127.0.0.1:$2/"; echo; done | sort -u | tr '\n' ' ')
    [[ $seen == "a1 a2 a3 " ]] || die "$1 on port $2 did not rotate over the 3 backends (saw: $seen)"
    h2=$(curl -s --max-time 2 --http2-prior-knowledge "http://127.0.0.1:$(port_for h2 "$1")/" || true)
    [[ $h2 =~ ^a[123]$ ]] || die "$1 does not answer h2c (got: $h2)"
    tls=$(curl -s --max-time 2 --cacert "$WORK/tls.crt" "https://127.0.0.1:$(port_for tls "$1")/" || true)
    [[ $tls =~ ^a[123]$ ]] || die "$1 does not answer HTTPS (got: $tls)"
    # What the TLS scenarios measure: full handshakes only in tlsfull, resumptions offered and
    # taken in tls (the proxy issues tickets and accepts them), AES-128-GCM in tlska.
    hs=$("$WORK/tlsload" 127.0.0.1 "$(port_for tls "$1")" 1 2 full bench.test | grep '^handshakes:')
    [[ $hs =~ ^handshakes:\ [1-9][0-9]*\ full,\ 0\ resumed$ ]] || die "$1: tlsload full did not do only full handshakes ($hs)"
    hs=$("$WORK/tlsload" 127.0.0.1 "$(port_for tls "$1")" 1 2 resume bench.test | grep '^handshakes:')
    [[ $hs =~ ^handshakes:\ [12]\ full,\ [1-9][0-9]*\ resumed$ ]] || die "$1 does not resume TLS sessions ($hs)"
    suite=$(OPENSSL_CONF=$WORK/openssl-aes128.cnf timeout 5 openssl s_client -connect "127.0.0.1:$(port_for tls "$1")" </dev/null 2>/dev/null | grep -m1 '^New, ' || true)
    [[ $suite == 'New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256' ]] || die "$1: the tlska client did not get TLS 1.3 AES-128-GCM ($suite)"
    tlsup=$(curl -s --max-time 2 "http://127.0.0.1:$(port_for tlsup "$1")/" || true)
    [[ $tlsup =~ ^t[123]$ ]] || die "$1 does not reach the HTTPS backends (got: $tlsup)"
    policy=$(curl -s --max-time 2 -u bench:secret "http://127.0.0.1:$(port_for policy "$1")/" || true)
    [[ $policy =~ ^a[123]$ ]] || die "$1 does not pass an authenticated request on its policy port (got: $policy)"
    refused=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$(port_for policy "$1")/" || true)
    [[ $refused == 401 ]] || die "$1 serves its policy port without credentials (got: $refused)"
    # curl -v prints the response trailers: a gRPC call ends with grpc-status 0.
    grpc=$(curl -sv --max-time 2 --http2-prior-knowledge --data-binary @"$WORK/grpc.bin" \
        -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$(port_for grpc "$1")/bench.Echo/Unary" 2>&1 >/dev/null || true)
    grep -qi '^< grpc-status: 0' <<<"$grpc" || die "$1 does not pass a gRPC call (got: $grpc)"
done

{
    echo "idle_rss_kib sluice $(mem_kib VmRSS $(pids_of sluice))"
    echo "idle_rss_kib nginx $(mem_kib VmRSS $(pids_of nginx))"
    echo "idle_rss_kib haproxy $(mem_kib VmRSS $(pids_of haproxy))"
} >"$WORK/memory.txt"

# ------------------------------------------------------------------ one measurement
CLK_TCK=$(getconf CLK_TCK)
# busy_ticks: CPU ticks the whole machine spent busy (user nice system irq softirq steal).
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
# own_child_ticks: CPU ticks of this shell's finished children (the load tools and helpers).
own_child_ticks() {
    times >"$WORK/times"
    awk -v t="$CLK_TCK" 'NR == 2 {
        n = split($0, f, " "); s = 0
        for (i = 1; i <= n; i++) { split(f[i], p, "m"); s += p[1] * 60 + p[2] }
        printf "%d", s * t }' "$WORK/times"
}
# perf_start BASE PIDS TARGET: perf stat and perf record on PIDS (all their threads) until perf_stop.
# Kernel call chains are complete either way (the summary groups kernel samples by them). sluice is
# built without frame pointers (release profile: line tables only), so its user-space chains come
# from DWARF unwinding (499 Hz, 16 KiB of stack per sample), which names the callers of malloc and
# memmove; nginx and HAProxy (Debian, stripped) get frame-pointer chains, their samples are
# attributed by their own symbol.
PERF_PIDS=()
perf_start() {
    local base=$1 list graph=(-g -F 999)
    [[ $3 == sluice ]] && graph=(--call-graph dwarf,16384 -F 499)
    list=$(tr ' ' '\n' <<<"$2" | grep . | paste -sd,)
    perf stat -x, -e task-clock,user_time,system_time,context-switches,cpu-migrations,page-faults,cycles,instructions \
        -p "$list" -o "$base.stat" 2>/dev/null &
    PERF_PIDS=($!)
    perf record -q "${graph[@]}" -p "$list" -o "$base.data" 2>/dev/null &
    PERF_PIDS+=($!)
    PIDS+=("${PERF_PIDS[@]}")
    sleep 0.3 # perf attaches to every thread before the load starts
}
# perf_stop: SIGINT makes both write their results; bounded wait (15 s), then SIGKILL.
perf_stop() {
    stop_pids INT 150 "${PERF_PIDS[@]}"
}
# perf_summary BASE TARGET RAWFILE: the text summary of one profiled run (lib/perfsum.py).
perf_summary() {
    timeout 300 perf report -i "$1.data" --no-inline --no-children --sort dso,sym --percent-limit 0.5 --stdio -g none \
        2>/dev/null >"$1.report" || true
    timeout 300 perf script -i "$1.data" --no-inline -F period,ip,sym,dso 2>/dev/null >"$1.script" || true
    python3 "$HERE/lib/perfsum.py" --target "$2" --stat "$1.stat" --report "$1.report" --script "$1.script" --run "$3"
    rm -f "$1.script"
}
# measure ROUND SCENARIO TARGET SECONDS: run the load tool once, record its output, the load
# average, and the CPU ticks the proxy, the backends, the load tool and everything else used.
measure() {
    local round=$1 scen=$2 target=$3 secs=$4 port pids out c0 c1 b0 b1 m0 m1 bound u0 s0 u1 s1 profiled=0
    port=$(port_for "$scen" "$target")
    pids=$(pids_of "$target")
    out=$WORK/raw/$round-$scen-$target.txt
    bound=$((secs + 20))
    {
        echo "# round=$round scenario=$scen target=$target port=$port seconds=$secs"
        echo "# loadavg_before=$(cut -d' ' -f1 /proc/loadavg)"
    } >"$out"
    if [[ $PERF == 1 && -n $pids && $round != 0 ]]; then
        profiled=1
        perf_start "$WORK/perf/$round-$scen-$target" "$pids" "$target"
    fi
    # shellcheck disable=SC2086
    read -r u0 s0 < <(cpu_ticks_split $pids)
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $pids); b0=$(cpu_ticks $BACKEND_PIDS); own_child_ticks >"$WORK/o0"; m0=$(busy_ticks)
    case $scen in
    h1) timeout $bound wrk -t2 -c$CONNS -d"${secs}s" --latency "http://127.0.0.1:$port/" >>"$out" 2>&1 || true ;;
    close | tcpconn)
        timeout $bound wrk -t2 -c$CONNS -d"${secs}s" --latency -H 'Connection: close' \
            "http://127.0.0.1:$port/" >>"$out" 2>&1 || true ;;
    tls) # a new connection per request; wrk resumes the TLS 1.3 session of its previous one
        timeout $bound wrk -t2 -c$CONNS -d"${secs}s" --latency -H 'Connection: close' \
            "https://127.0.0.1:$port/" >>"$out" 2>&1 || true ;;
    tlsfull) # a new connection per request, every handshake a full one (tlsload counts them)
        timeout $bound "$WORK/tlsload" 127.0.0.1 "$port" "$secs" $CONNS full bench.test >>"$out" 2>&1 || true ;;
    tlska) # HTTPS keep-alive, the client offering only TLS 1.3 with AES-128-GCM
        OPENSSL_CONF=$WORK/openssl-aes128.cnf timeout $bound wrk -t2 -c$CONNS -d"${secs}s" --latency \
            "https://127.0.0.1:$port/" >>"$out" 2>&1 || true ;;
    h2)
        timeout $bound h2load -t2 -c$H2_CONNS -m$H2_STREAMS -D "$secs" \
            --log-file="$out.log" "http://127.0.0.1:$port/" >>"$out" 2>&1 || true ;;
    grpc) # unary calls over h2c: POST of one length-prefixed message, gRPC headers
        timeout $bound h2load -t2 -c$H2_CONNS -m$H2_STREAMS -D "$secs" -d "$WORK/grpc.bin" \
            -H 'content-type: application/grpc' -H 'te: trailers' \
            --log-file="$out.log" "http://127.0.0.1:$port/bench.Echo/Unary" >>"$out" 2>&1 || true ;;
    tlsup) # keep-alive clients; the proxy keeps TLS connections to the HTTPS backends
        local scheme=http
        [[ $target == direct ]] && scheme=https
        timeout $bound wrk -t2 -c$CONNS -d"${secs}s" --latency "$scheme://127.0.0.1:$port/" >>"$out" 2>&1 || true ;;
    policy) # keep-alive through every access policy, with credentials and an allowed Origin
        timeout $bound wrk -t2 -c$CONNS -d"${secs}s" --latency -H 'Authorization: Basic YmVuY2g6c2VjcmV0' \
            -H 'Origin: https://app.example' "http://127.0.0.1:$port/" >>"$out" 2>&1 || true ;;
    bulk) timeout $bound "$WORK/benchtool" bulk 127.0.0.1 "$port" "$secs" $BULK_CONNS >>"$out" 2>&1 || true ;;
    esac
    # shellcheck disable=SC2086
    m1=$(busy_ticks); own_child_ticks >"$WORK/o1"; c1=$(cpu_ticks $pids); b1=$(cpu_ticks $BACKEND_PIDS)
    # shellcheck disable=SC2086
    read -r u1 s1 < <(cpu_ticks_split $pids)
    [[ $profiled == 1 ]] && perf_stop
    local tool=$(($(<"$WORK/o1") - $(<"$WORK/o0")))
    {
        echo "# tool_cpu_seconds=$(awk -v a="$tool" -v t="$CLK_TCK" 'BEGIN {printf "%.3f", a / t}')"
        # CPU the machine spent on anything but this proxy, the backends and the load tool
        # (other users of the machine, plus kernel work not charged to a process).
        echo "# other_cpu_seconds=$(awk -v m="$((m1 - m0))" -v p="$((c1 - c0))" -v b="$((b1 - b0))" -v o="$tool" -v t="$CLK_TCK" 'BEGIN {x = (m - p - b - o) / t; if (x < 0) x = 0; printf "%.3f", x}')"
        echo "# proxy_cpu_seconds=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN {printf "%.3f", (b - a) / t}')"
        echo "# proxy_user_seconds=$(awk -v a="$u0" -v b="$u1" -v t="$CLK_TCK" 'BEGIN {printf "%.3f", (b - a) / t}')"
        echo "# proxy_system_seconds=$(awk -v a="$s0" -v b="$s1" -v t="$CLK_TCK" 'BEGIN {printf "%.3f", (b - a) / t}')"
        echo "# backend_cpu_seconds=$(awk -v a="$b0" -v b="$b1" -v t="$CLK_TCK" 'BEGIN {printf "%.3f", (b - a) / t}')"
        echo "# loadavg_after=$(cut -d' ' -f1 /proc/loadavg)"
    } >>"$out"
    if [[ $scen == h2 || $scen == grpc ]]; then # keep only the latency summary, not the per-request log
        python3 "$HERE/lib/h2lat.py" "$out.log" >>"$out" && rm -f "$out.log"
    fi
    # The summary is named .perf, not .txt: report.py reads raw/*.txt as runs.
    [[ $profiled == 1 ]] && perf_summary "$WORK/perf/$round-$scen-$target" "$target" "$out" >"${out%.txt}.perf"
    sleep 0.5 # let TIME_WAIT churn and CPU settle between runs
}

# ------------------------------------------------------------------ machine description
{
    echo "mode=$MODE"
    echo "rounds=$ROUNDS"
    echo "duration=$DURATION"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc=$(nproc)"
    echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "kernel=$(uname -sr)"
    echo "os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    echo "nginx=$(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "haproxy=$(haproxy -v 2>/dev/null | head -1 | awk '{print $3}')"
    echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    echo "h2load=$(h2load --version 2>&1 | head -1 | awk '{print $2}')"
    echo "sluice=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && [[ -n $(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]] && echo ' + uncommitted changes in src/Cargo')"
    echo "rustc=$(cd "$ROOT" && rustc --version 2>/dev/null)"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "workers=$WORKERS"
    echo "conns=$CONNS"
    echo "h2=$H2_CONNS x $H2_STREAMS"
    echo "bulk_conns=$BULK_CONNS"
    echo "command=$COMMAND"
} >"$WORK/meta.txt"

# ------------------------------------------------------------------ wait for a quiet machine
# WAIT_IDLE seconds at most (default: 180 for a full run, 0 for QUICK) for the machine to be
# mostly idle (< 0.3 CPU busy over 2 s) before measuring; the result notes it either way.
WAIT_IDLE=${WAIT_IDLE:-$([[ $QUICK == 1 ]] && echo 0 || echo 180)}
idle_deadline=$((SECONDS + WAIT_IDLE))
while :; do
    a=$(busy_ticks); sleep 2; b=$(busy_ticks)
    busy=$(awk -v a="$a" -v b="$b" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / t / 2}')
    if awk -v x="$busy" 'BEGIN {exit !(x < 0.3)}'; then break; fi
    if ((SECONDS >= idle_deadline)); then
        ((WAIT_IDLE > 0)) && log "machine still busy ($busy CPUs) after waiting ${WAIT_IDLE}s; measuring anyway"
        break
    fi
    log "machine busy ($busy CPUs in use by others); waiting (until $((idle_deadline - SECONDS))s more)"
    sleep 8
done
echo "busy_before_runs=$busy" >>"$WORK/meta.txt"

# ------------------------------------------------------------------ the runs
read -ra SCENARIOS <<<"${SCENARIOS:-h1 close h2 tls tlsfull tlska tcpconn bulk grpc tlsup policy}"
TARGETS=(sluice nginx haproxy direct)
# skipped SCENARIO TARGET: the backends speak plain HTTP/1.1, so no direct h2c or TLS figure;
# the backends have no access policies, so no direct policy figure (compare with h1).
skipped() { [[ ($1 == h2 || $1 == tls || $1 == tlsfull || $1 == tlska || $1 == policy) && $2 == direct ]]; }
log "warm-up (1 s per proxy)"
for t in "${TARGETS[@]}"; do measure 0 h1 "$t" 1; done
rm -f "$WORK"/raw/0-*

total=0
for scen in "${SCENARIOS[@]}"; do
    for t in "${TARGETS[@]}"; do skipped "$scen" "$t" || total=$((total + ROUNDS)); done
done
n=0
for round in $(seq "$ROUNDS"); do
    for scen in "${SCENARIOS[@]}"; do
        # Interleave, rotating which target goes first each round (A B C D, B C D A, ...).
        for k in 0 1 2 3; do
            t=${TARGETS[$(((k + round - 1) % 4))]}
            skipped "$scen" "$t" && continue
            n=$((n + 1))
            log "[$n/$total] round $round $scen $t"
            measure "$round" "$scen" "$t" "$DURATION"
        done
    done
done

{
    echo "peak_rss_kib sluice $(mem_kib VmHWM $(pids_of sluice))"
    echo "peak_rss_kib nginx $(mem_kib VmHWM $(pids_of nginx))"
    echo "peak_rss_kib haproxy $(mem_kib VmHWM $(pids_of haproxy))"
} >>"$WORK/memory.txt"
# Memory per idle keep-alive connection: RSS while IDLE_CONNS connections that each had one
# answer wait, minus RSS just before, divided by the connections answered.
for p in sluice nginx haproxy; do
    before=$(mem_kib VmRSS $(pids_of $p))
    timeout 60 python3 "$HERE/lib/idleconns.py" "$(port_for h1 $p)" "$IDLE_CONNS" 2 >"$WORK/idle-$p.txt" &
    held=$!
    for _ in $(seq 300); do [[ -s $WORK/idle-$p.txt ]] && break; sleep 0.1; done
    sleep 0.5
    after=$(mem_kib VmRSS $(pids_of $p))
    wait $held || true
    answered=$(head -1 "$WORK/idle-$p.txt" 2>/dev/null || echo 0)
    if [[ ${answered:-0} -gt 0 ]]; then
        echo "idle_conn_bytes $p $(((after - before) * 1024 / answered))" >>"$WORK/memory.txt"
    fi
    log "idle connections: $p answered ${answered:-0}/$IDLE_CONNS, RSS ${before} -> ${after} KiB"
done
echo "idle_conns=$IDLE_CONNS" >>"$WORK/meta.txt"
kill -0 $SLUICE_PID 2>/dev/null || die "sluice died during the runs (see $WORK/sluice.log)"
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/meta.txt"

# ------------------------------------------------------------------ scale figures
if [[ ${SKIP_SCALE:-0} != 1 ]]; then
    log "scale: 1,000 pools / 10,000 endpoints"
    python3 "$HERE/lib/scale.py" --sluice "$SLUICE" --dir "$WORK/scale" --admin-port $SCALE_ADMIN \
        --port-base $SCALE_PORT_BASE --backends "$BE1,$BE2,$BE3" --changes "$SCALE_CHANGES" \
        --workers $WORKERS >"$WORK/scale.json" || log "scale run failed (see $WORK/scale)"
fi

# ------------------------------------------------------------------ report
mkdir -p "$RESULTS_DIR"
OUT=$RESULTS_DIR/$(date '+%Y-%m-%d-%H%M')-$MODE.md
python3 "$HERE/lib/report.py" --work "$WORK" --out "$OUT"
log "written $OUT"
if [[ $PERF == 1 ]]; then
    mkdir -p "${OUT%.md}-perf"
    for f in "$WORK"/raw/*.perf; do [[ -e $f ]] && cp "$f" "${OUT%.md}-perf/$(basename "${f%.perf}").txt"; done
    log "profiles in ${OUT%.md}-perf/ (perf.data in $WORK/perf: KEEP_WORK=1 keeps them)"
fi
