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
#                              tests/packaging.rs (the chart on a real API server) and
#                              tests/kube_scale.rs at 1,000 pools (debug build, ~50 s;
#                              hack/scale.sh runs it at any size in a release build)
#   hack/e2e.sh FILTER [ARGS]  passed to the test binaries (one test by name, --nocapture, ...)
set -euo pipefail
cd "$(dirname "$0")/.."

SLUICE_KUBE_BINS=$(bash hack/kube-bins.sh --print-dir)
export SLUICE_KUBE_BINS
export SLUICE_REQUIRE_KUBE=1

export SLUICE_SCALE_POOLS="${SLUICE_SCALE_POOLS:-1000}"

tests=(--test kube_smoke --test kube_e2e --test packaging --test kube_scale)
cargo test --locked "${tests[@]}" --no-run
exec bash hack/in-netns.sh cargo test --offline --locked "${tests[@]}" -- --include-ignored "$@"
