#!/usr/bin/env bash
# Every test that needs a real Kubernetes API server, in one command (CI and developers):
# builds or finds the control-plane binaries (hack/kube-bins.sh; ~8 min the first time, then
# cached), builds the test binaries outside the namespace (this may fetch crates), then runs
# them offline in the private network namespace of hack/in-netns.sh (root, or unprivileged
# user namespaces). SLUICE_REQUIRE_KUBE=1 turns a test that would skip for want of the
# binaries into a failure, so this run cannot pass without reaching the API server.
#
# Usage:
#   hack/e2e.sh                every such test: tests/kube_smoke.rs, tests/kube_e2e.rs,
#                              tests/kube_ingress.rs (Ingresses with real traffic),
#                              tests/kube_gateway.rs (Gateway API with real traffic and status,
#                              ~10 s; its CRDs come from the Go module, downloaded here),
#                              tests/packaging.rs (the chart on a real API server) and
#                              tests/kube_scale.rs at 1,000 pools (debug build, ~50 s;
#                              hack/scale.sh runs it at any size in a release build); then
#                              hack/cluster-e2e.sh: the chart as pods and real Deployments on
#                              the local cluster (root only; about 2 min, see below)
#   hack/e2e.sh FILTER [ARGS]  passed to the test binaries (one test by name, --nocapture, ...);
#                              the cluster run is left out
#
# The cluster run (hack/cluster-e2e.sh) uses the debug sluice binary the test build above has
# just made (target/debug/sluice, SLUICE_BIN to override): every step is about correctness
# (0 failed requests, health, Lease, status, Events, upgrade, uninstall), not speed, and a
# release build would add about 10 min on 2 cores. It builds hack/node-agent once per source
# hash (about 2 min, Go caches warm from the kube bins) and needs root (network namespaces,
# bridge, mounts): without root it fails, unless SLUICE_E2E_CLUSTER=0 skips it. It is bounded
# by `timeout` (15 min) and tears the cluster down on every exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SLUICE_KUBE_BINS=$(bash hack/kube-bins.sh --print-dir)
export SLUICE_KUBE_BINS
export SLUICE_REQUIRE_KUBE=1

export SLUICE_SCALE_POOLS="${SLUICE_SCALE_POOLS:-1000}"

tests=(--test kube_smoke --test kube_e2e --test kube_ingress --test kube_gateway --test packaging --test kube_scale)
cargo test --locked "${tests[@]}" --no-run
# The Gateway API standard CRDs tests/kube_gateway.rs installs (into the Go module cache).
(cd "${TMPDIR:-/tmp}" && go mod download sigs.k8s.io/gateway-api@v1.6.3)
bash hack/in-netns.sh cargo test --offline --locked "${tests[@]}" -- --include-ignored "$@"

if (($# > 0)); then exit 0; fi
if [[ ${SLUICE_E2E_CLUSTER:-1} == 0 ]]; then
  echo "e2e: SLUICE_E2E_CLUSTER=0: hack/cluster-e2e.sh skipped" >&2
  exit 0
fi
# The binary the integration tests above ran (cargo builds it for them).
target_dir=${CARGO_TARGET_DIR:-target}
SLUICE_BIN=${SLUICE_BIN:-$(cd "$target_dir" && pwd)/debug/sluice}
export SLUICE_BIN
[[ -x $SLUICE_BIN ]] || { echo "e2e: no sluice binary at $SLUICE_BIN" >&2; exit 1; }
# The node agent's own unit tests (what it refuses, address allocation, the service proxy); the
# Go caches are those hack/cluster.sh builds the agent with, so this costs seconds once the agent
# and client-go's fake clientset (the service proxy's test, about 1 min the first time) are built.
(cd hack/node-agent && CGO_ENABLED=0 go test -trimpath -p 2 ./...)
exec timeout --kill-after=60 900 bash hack/cluster-e2e.sh
