#!/usr/bin/env bash
# A whole Kubernetes cluster on this machine, in one private network namespace: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler (hack/kube-bins.sh, from Go modules)
# and one node, hack/node-agent (a small kubelet stand-in that runs each pod's containers as
# processes in the pod's own network namespace; see hack/node-agent/README.md). Deployments
# become ReplicaSets and Pods, the real EndpointSlice controller follows pod readiness, and
# the Helm chart runs sluice as pods. Needs root (network namespaces, bridge, mounts).
#
# Usage:
#   sudo hack/cluster.sh up       build what is missing (kube bins, node agent, sluice), start
#                                 the cluster, wait until the node is Ready; prints the env
#   hack/cluster.sh env           the variables to point kubectl and helm at it
#   sudo hack/cluster.sh exec CMD run CMD inside the cluster's network namespace, with
#                                 KUBECONFIG and the kube bins on PATH; for example
#                                 hack/cluster.sh exec kubectl get pods -A
#   sudo hack/cluster.sh shell    an interactive shell there
#   sudo hack/cluster.sh down     stop everything, delete the namespaces and the state dir
#   hack/cluster.sh build         only build the node agent; prints its path
#
# The API server is https://198.18.0.1:6443 inside the network namespace, which has no route
# to anything else: nothing in the cluster can reach this machine's network or the internet,
# and kubectl/helm must run inside it (exec/shell). Pods get addresses in 198.19.0.0/16 on a
# bridge there; images map to local binaries by name: ".../sluice:TAG" runs the sluice binary
# (SLUICE_BIN, default: `cargo build --bin sluice`), ".../sluice-echo:TAG" the echo backend.
# Service ClusterIPs (198.18.200.0/24) carry TCP: there is no kube-proxy, the node agent stands
# in for it (hack/node-agent/README.md, "Services"): from the namespace and from pods.
# Pod logs: STATE/node/pods/NS_NAME_UID/CONTAINER.log (the agent serves no `kubectl logs`).
#
# Environment (optional):
#   SLUICE_CLUSTER      cluster name, also the network namespace's (default sluice-cluster)
#   SLUICE_CLUSTER_DIR  state directory (default /tmp/$SLUICE_CLUSTER)
#   SLUICE_BIN          sluice binary for the sluice image
#   SLUICE_KUBE_BINS    kube bins directory (default: hack/kube-bins.sh --print-dir)
#   SLUICE_CLUSTER_IMAGES  more images, "NAME=PATH NAME=PATH": pods whose image's last name
#                       element is NAME run PATH (hack/conformance.sh maps echo-basic and
#                       coredns this way)
#
# Measured (2 shared cores, 2026-12-06): with everything built, `up` takes 10-18 s: 1-3 s
# certificates and copies, then 9-14 s to a Ready node with the default ServiceAccount and
# kube-root-ca.crt in place (19 runs of hack/cluster-e2e.sh; an earlier series measured 16-19 s
# with 5-8 s of copies). Building the node agent the first time: 2 min 10 s with the Go caches
# warm from hack/kube-bins.sh, 6 min from an empty GOCACHE (module
# cache warm; 2 cores at load average 9-14). `down` takes about 1 s.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

NAME=${SLUICE_CLUSTER:-sluice-cluster}
STATE=${SLUICE_CLUSTER_DIR:-/tmp/$NAME}
API_IP=198.18.0.1
API_PORT=6443
# Service ClusterIPs: inside the test range 198.18.0.0/15, apart from the loopback addresses
# 198.18.0.1-8 and the pod network 198.19.0.0/16. The first one is the `kubernetes` Service's
# (in the API server's certificate).
SERVICE_CIDR=198.18.200.0/24
SERVICE_API_IP=198.18.200.1
CACHE=${SLUICE_KUBE_BINS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-kube-bins}

log() { echo "cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }
need_root() { [[ $(id -u) -eq 0 ]] || die "$1 needs root (network namespaces, bridge, mounts)"; }

# build_agent: the node agent, built once per source hash into the kube-bins cache.
build_agent() {
  local src=$ROOT/hack/node-agent hash dir
  hash=$( (cd "$src" && cat go.mod go.sum ./*.go; go version 2>/dev/null || true) | sha256sum | cut -c1-16)
  dir=$CACHE/node-agent-$hash
  if [[ ! -x $dir/node-agent ]]; then
    command -v go >/dev/null || die "go not found on PATH (needed once to build hack/node-agent)"
    log "building hack/node-agent"
    local tmp
    mkdir -p "$CACHE"
    tmp=$(mktemp -d "$CACHE/.node-agent.XXXXXX")
    (cd "$src" && CGO_ENABLED=0 go build -p 2 -trimpath -o "$tmp/node-agent" .)
    chmod 755 "$tmp"
    rm -rf "$dir"
    mv "$tmp" "$dir"
  fi
  echo "$dir/node-agent"
}

bins_dir() {
  if [[ -z ${SLUICE_KUBE_BINS-} && -f $STATE/bins ]]; then cat "$STATE/bins"; return; fi
  if [[ -n ${SLUICE_KUBE_BINS-} ]]; then echo "$SLUICE_KUBE_BINS"; else bash "$ROOT/hack/kube-bins.sh" --print-dir; fi
}

# kubeconfig USER TOKEN: a kubeconfig for the API server as seen inside the namespace.
kubeconfig() {
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $NAME
  cluster:
    server: https://$API_IP:$API_PORT
    certificate-authority: $STATE/pki/ca.crt
users:
- name: $1
  user:
    token: $2
contexts:
- name: $NAME
  context: {cluster: $NAME, user: $1, namespace: default}
current-context: $NAME
EOF
}

make_pki() {
  local d=$STATE/pki
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 7 \
      -subj "/CN=$NAME-ca" -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
      -subj /CN=kube-apiserver 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:127.0.0.1,IP:$API_IP,IP:$SERVICE_API_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
      >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -set_serial 2 -days 7 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    # The service-account signing key: the API server issues pod tokens with it, the
    # controller-manager's token controllers use it too.
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub
    local admin kcm sched
    admin=$(openssl rand -hex 16) kcm=$(openssl rand -hex 16) sched=$(openssl rand -hex 16)
    {
      echo "$admin,cluster-admin,cluster-admin,system:masters"
      echo "$kcm,system:kube-controller-manager,system:kube-controller-manager"
      echo "$sched,system:kube-scheduler,system:kube-scheduler"
    } >tokens.csv
    chmod 600 ./*.key tokens.csv
    kubeconfig cluster-admin "$admin" >"$STATE/kubeconfig"
    kubeconfig system:kube-controller-manager "$kcm" >"$STATE/controller-manager.kubeconfig"
    kubeconfig system:kube-scheduler "$sched" >"$STATE/scheduler.kubeconfig"
  )
}

# _run (inside the namespace, as PID 1 of a PID namespace): start every component and stay
# until one exits; then everything ends with this PID namespace.
run_components() {
  local bins=$1 agent=$2 p=$STATE/pki l=$STATE/logs images=() f
  mkdir -p "$l"
  # Every binary under STATE/images is an image, by its file name.
  for f in "$STATE"/images/*; do images+=(--image "$(basename "$f")=$f"); done
  ip link set lo up
  "$bins/etcd" --name=e0 --data-dir="$STATE/etcd" \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=e0=http://127.0.0.1:2380 --unsafe-no-fsync --log-level=warn >"$l/etcd.log" 2>&1 &
  "$bins/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --secure-port=$API_PORT --advertise-address=$API_IP \
    --cert-dir="$STATE/apiserver-certs" --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --client-ca-file="$p/ca.crt" --token-auth-file="$p/tokens.csv" --authorization-mode=RBAC \
    --service-cluster-ip-range=$SERVICE_CIDR \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    >"$l/kube-apiserver.log" 2>&1 &
  local i
  for i in $(seq 1 120); do
    "$bins/kubectl" --kubeconfig="$STATE/kubeconfig" get --raw /readyz >/dev/null 2>&1 && break
    sleep 0.5
  done
  "$bins/kube-controller-manager" --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --use-service-account-credentials=true --leader-elect=false --bind-address=127.0.0.1 \
    --cluster-name="$NAME" >"$l/kube-controller-manager.log" 2>&1 &
  "$bins/kube-scheduler" --kubeconfig="$STATE/scheduler.kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 >"$l/kube-scheduler.log" 2>&1 &
  "$agent" --kubeconfig="$STATE/kubeconfig" --node-name="$NAME-node" --state-dir="$STATE/node" \
    --api-host=$API_IP --api-port=$API_PORT --netns-prefix="$NAME-pod" \
    "${images[@]}" >"$l/node-agent.log" 2>&1 &
  local agent_pid=$!
  trap 'kill -TERM $agent_pid 2>/dev/null; wait $agent_pid; exit 0' TERM INT
  # Any component exiting ends the cluster (its log says why).
  wait -n || true
  log "a component exited; stopping the cluster (see $l)"
  kill -TERM $agent_pid 2>/dev/null || true
  wait $agent_pid || true
  exit 1
}

pid_alive() { [[ -f $STATE/supervisor.pid ]] && kill -0 "$(cat "$STATE/supervisor.pid")" 2>/dev/null; }

cmd_up() {
  need_root up
  pid_alive && die "$NAME is already up (hack/cluster.sh down first)"
  [[ -e /run/netns/$NAME ]] && die "network namespace $NAME exists (hack/cluster.sh down)"
  local start=$SECONDS bins agent sluice
  bins=$(bins_dir)
  agent=$(build_agent)
  sluice=${SLUICE_BIN:-}
  if [[ -z $sluice ]]; then
    log "building sluice (cargo build --bin sluice)"
    (cd "$ROOT" && cargo build --locked --bin sluice >&2)
    sluice=$ROOT/target/debug/sluice
  fi
  [[ -x $sluice ]] || die "no sluice binary at $sluice"
  rm -rf "$STATE"
  mkdir -p "$STATE/images" "$STATE/node"
  # Pods run as the chart's non-root user: everything they read must be world-readable.
  chmod 755 "$STATE" "$STATE/images" "$STATE/node"
  cp "$sluice" "$STATE/images/sluice"
  cp "$agent" "$STATE/images/sluice-echo"
  local pair
  for pair in ${SLUICE_CLUSTER_IMAGES-}; do
    [[ $pair == ?*=?* && ${pair%%=*} != */* ]] || die "SLUICE_CLUSTER_IMAGES: want NAME=PATH, got $pair"
    [[ -x ${pair#*=} ]] || die "SLUICE_CLUSTER_IMAGES: ${pair#*=} is not an executable file"
    cp "${pair#*=}" "$STATE/images/${pair%%=*}"
  done
  chmod 755 "$STATE/images/"*
  echo "$bins" >"$STATE/bins"
  make_pki
  local built=$SECONDS
  ip netns add "$NAME"
  ip -n "$NAME" link set lo up
  local i
  for i in 1 2 3 4 5 6 7 8; do ip -n "$NAME" addr add "198.18.0.$i/32" dev lo; done
  # setsid: the cluster outlives this shell; the PID namespace (unshare --kill-child) takes
  # every process with it when `down` kills the supervisor.
  setsid ip netns exec "$NAME" unshare --pid --fork --kill-child --mount-proc \
    bash "$0" _run "$bins" "$agent" >"$STATE/supervisor.log" 2>&1 </dev/null &
  echo $! >"$STATE/supervisor.pid"
  local k=("$bins/kubectl" --kubeconfig="$STATE/kubeconfig")
  local deadline=$((SECONDS + 180)) ok=false
  while ((SECONDS < deadline)); do
    pid_alive || { tail -n 20 "$STATE"/logs/*.log "$STATE/supervisor.log" >&2 || true; die "the cluster stopped while starting"; }
    # Ready when: the node is Ready, the controller-manager made the default ServiceAccount
    # and published the root CA (pods mount both), and the scheduler holds no pending pods.
    if ip netns exec "$NAME" "${k[@]}" get node "$NAME-node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -q True &&
      ip netns exec "$NAME" "${k[@]}" -n default get serviceaccount default >/dev/null 2>&1 &&
      ip netns exec "$NAME" "${k[@]}" -n default get configmap kube-root-ca.crt >/dev/null 2>&1; then
      ok=true
      break
    fi
    sleep 1
  done
  $ok || { tail -n 20 "$STATE"/logs/*.log >&2 || true; die "not ready after 180 s"; }
  log "up in $((SECONDS - built)) s (builds and certificates $((built - start)) s)"
  cmd_env
}

cmd_env() {
  local bins
  bins=$(bins_dir)
  cat <<EOF
# cluster $NAME: API server https://$API_IP:$API_PORT inside network namespace $NAME
export KUBECONFIG=$STATE/kubeconfig
export PATH=$bins:\$PATH
# kubectl and helm reach it only from inside the namespace:
#   sudo hack/cluster.sh exec kubectl get pods -A      (or: sudo hack/cluster.sh shell)
EOF
}

cmd_exec() {
  need_root exec
  [[ -f $STATE/kubeconfig ]] || die "$NAME is not up (hack/cluster.sh up)"
  local bins
  bins=$(bins_dir)
  exec ip netns exec "$NAME" env KUBECONFIG="$STATE/kubeconfig" PATH="$bins:$PATH" "$@"
}

cmd_down() {
  need_root down
  if pid_alive; then
    local pid
    pid=$(cat "$STATE/supervisor.pid")
    # SIGTERM to the PID namespace's init (the _run shell, the supervisor's only child): the
    # node agent stops its pods, then everything exits; SIGKILL after 15 s.
    local child i
    child=$(pgrep -P "$pid" || true)
    if [[ -n $child ]]; then kill -TERM "$child" 2>/dev/null || true; fi
    for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  if [[ -e /run/netns/$NAME ]]; then ip netns del "$NAME" || true; fi
  # Pod namespaces were mounted in the cluster's own mount namespace; only their empty
  # mount-point files can be left here.
  local f
  for f in /run/netns/"$NAME"-pod-*; do
    [[ -e $f ]] || continue
    mountpoint -q "$f" && { ip netns del "$(basename "$f")" || true; } || rm -f "$f"
  done
  rm -rf "$STATE"
  log "down"
}

case "${1-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  exec) shift; [[ $# -gt 0 ]] || die "usage: $0 exec CMD [ARGS...]"; cmd_exec "$@" ;;
  shell) cmd_exec "${SHELL:-bash}" ;;
  build) build_agent ;;
  _run) shift; run_components "$@" ;;
  -h | --help) sed -n '2,43p' "$0" ;;
  *) sed -n '2,43p' "$0" >&2; exit 2 ;;
esac
