# Shared by bench/run.sh and bench/idle-mem.sh (sourced): the benchmark's ports, waiting for
# a port, and stopping processes within a bound.

# bench_ports: every port from $PORT_BASE (the names lib/configs.sh's templates use).
bench_ports() {
    BE1=$((PORT_BASE + 901)); BE2=$((PORT_BASE + 902)); BE3=$((PORT_BASE + 903))
    SRC1=$((PORT_BASE + 911)); SRC2=$((PORT_BASE + 912)); SRC3=$((PORT_BASE + 913))
    GB1=$((PORT_BASE + 921)); GB2=$((PORT_BASE + 922)); GB3=$((PORT_BASE + 923)) # gRPC (h2c)
    TB1=$((PORT_BASE + 931)); TB2=$((PORT_BASE + 932)); TB3=$((PORT_BASE + 933)) # HTTPS
    SLUICE_HTTP=$((PORT_BASE + 80)); SLUICE_TCPCONN=$((PORT_BASE + 82)); SLUICE_BULK=$((PORT_BASE + 83))
    SLUICE_TLS=$((PORT_BASE + 84)); SLUICE_GRPC=$((PORT_BASE + 85)); SLUICE_TLSUP=$((PORT_BASE + 86))
    SLUICE_POLICY=$((PORT_BASE + 87)); SLUICE_ADMIN=$((PORT_BASE + 90))
    NGINX_HTTP=$((PORT_BASE + 180)); NGINX_H2=$((PORT_BASE + 181)); NGINX_TCPCONN=$((PORT_BASE + 182))
    NGINX_BULK=$((PORT_BASE + 183)); NGINX_TLS=$((PORT_BASE + 184)); NGINX_GRPC=$((PORT_BASE + 185))
    NGINX_TLSUP=$((PORT_BASE + 186)); NGINX_POLICY=$((PORT_BASE + 187))
    HAPROXY_HTTP=$((PORT_BASE + 280)); HAPROXY_H2=$((PORT_BASE + 281)); HAPROXY_TCPCONN=$((PORT_BASE + 282))
    HAPROXY_BULK=$((PORT_BASE + 283)); HAPROXY_TLS=$((PORT_BASE + 284)); HAPROXY_GRPC=$((PORT_BASE + 285))
    HAPROXY_TLSUP=$((PORT_BASE + 286)); HAPROXY_POLICY=$((PORT_BASE + 287))
    SCALE_ADMIN=$((PORT_BASE + 490)); SCALE_PORT_BASE=$((PORT_BASE + 500))
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT PID: wait (at most 15 s) until PORT accepts connections; fail if PID died.
wait_port() {
    for _ in $(seq 150); do
        port_open "$1" && return 0
        kill -0 "$2" 2>/dev/null || die "process $2 exited before listening on $1"
        sleep 0.1
    done
    die "nothing listens on port $1 after 15 s"
}

# stop_pids SIGNAL TENTHS PID...: sends SIGNAL, waits at most TENTHS tenths of a second for
# every PID to exit, then SIGKILLs whatever is left (and reaps the shell's own children).
stop_pids() {
    local signal=$1 tenths=$2 pid alive
    shift 2
    for pid in "$@"; do kill "-$signal" "$pid" 2>/dev/null || true; done
    for _ in $(seq "$tenths"); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for pid in "$@"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
}
