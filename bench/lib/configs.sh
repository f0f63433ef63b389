# Shared by bench/run.sh and bench/idle-mem.sh (sourced): the proxies' configuration files and
# their one certificate.

# render TEMPLATE OUT: replace every @NAME@ with the value of $NAME.
render() {
    local text
    text=$(<"$1")
    for name in DIR WORK NGINX_STREAM_MODULE BE1 BE2 BE3 SRC1 SRC2 SRC3 SLUICE_HTTP SLUICE_TCPCONN \
        SLUICE_BULK SLUICE_TLS NGINX_HTTP NGINX_H2 NGINX_TCPCONN NGINX_BULK NGINX_TLS HAPROXY_HTTP \
        HAPROXY_H2 HAPROXY_TCPCONN HAPROXY_BULK HAPROXY_TLS GB1 GB2 GB3 TB1 TB2 TB3 SLUICE_GRPC \
        NGINX_GRPC HAPROXY_GRPC SLUICE_TLSUP NGINX_TLSUP HAPROXY_TLSUP SLUICE_POLICY NGINX_POLICY \
        HAPROXY_POLICY SLUICE_ALLOW; do
        text=${text//@$name@/${!name}}
    done
    printf '%s\n' "$text" >"$2"
}

# make_certificate: one certificate for all three proxies in $WORK, ECDSA P-256 (the usual
# modern choice), self-signed; tls.pem is the pair in one file (HAProxy wants that).
make_certificate() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -keyout "$WORK/tls.key" -out "$WORK/tls.crt" -subj /CN=bench.test \
        -addext subjectAltName=DNS:bench.test,IP:127.0.0.1 2>/dev/null || die "openssl could not make a certificate"
    cat "$WORK/tls.crt" "$WORK/tls.key" >"$WORK/tls.pem"
}
