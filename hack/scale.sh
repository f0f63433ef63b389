#!/usr/bin/env bash
# The controller at scale against a real kube-apiserver (tests/kube_scale.rs): N BackendPools,
# Services and EndpointSlices, then /readyz time, status convergence, RSS, steady CPU and API
# requests, EndpointSlice change -> traffic latency under churn, failed requests. Prints the
# table row and asserts the targets in the test's header.
#
# Usage:
#   hack/scale.sh [N]    N pools (default 1000; SLUICE_SCALE_POOLS also works)
#
# Builds the test outside the namespace, runs it in the private network namespace of
# hack/in-netns.sh, like hack/e2e.sh (whose control-plane binaries it shares).
set -euo pipefail
cd "$(dirname "$0")/.."

export SLUICE_SCALE_POOLS="${1:-${SLUICE_SCALE_POOLS:-1000}}"
SLUICE_KUBE_BINS=$(bash hack/kube-bins.sh --print-dir)
export SLUICE_KUBE_BINS
export SLUICE_REQUIRE_KUBE=1

# Release build: the figures are the product's, not a debug build's.
cargo test --release --locked --test kube_scale --no-run
exec bash hack/in-netns.sh cargo test --release --offline --locked --test kube_scale \
  -- --include-ignored --nocapture
