#!/usr/bin/env bash
# Run the official Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance v1.6.3)
# against sluice running as pods in the local cluster of hack/cluster.sh (issue 18).
#
#   1. build (cached): the suite as a test binary, its echo-basic backend and CoreDNS (for the
#      base manifests' UDP backend), all from Go modules into the kube-bins cache; sluice with
#      `cargo build --bin sluice` (or SLUICE_BIN)
#   2. cluster: reuse a running cluster of the same name (its sluice binary refreshed), else
#      start one with echo-basic and coredns mapped as images (SLUICE_CLUSTER_IMAGES)
#   3. the Gateway API standard-channel CRDs of v1.6.3 (config/crd/standard/), server-side
#   4. sluice with the Helm chart, gatewayClass.enabled=true (GatewayClass $CLASS, controller
#      sluice.dev/gateway-controller), one replica, gatewayClass.serviceType=ClusterIP: each
#      Gateway's address is its own Service's ClusterIP (carried by the node agent's service proxy)
#   5. the suite, inside the cluster's network namespace (it reaches the API server and the
#      addresses sluice writes to Gateway status.addresses); its report goes to $REPORT
#   6. the summary: each test PASS/FAIL/SKIP (with the first error line of a failure) and the
#      report's per-profile results
#
# Usage (root: network namespaces, as hack/cluster.sh):
#   sudo hack/conformance.sh                    the whole suite; the cluster is stopped after,
#                                               unless it was already up (then it stays)
#   sudo hack/conformance.sh --run-test NAME    one test (its ShortName, e.g. HTTPRouteSimpleSameNamespace)
#   sudo hack/conformance.sh --skip-tests A,B   leave tests out
#   sudo hack/conformance.sh --keep             leave the cluster and the suite's base resources
#                                               up for the next run (iteration: it then reuses
#                                               both, with the sluice binary refreshed);
#                                               stop with: sudo SLUICE_CLUSTER=sluice-conformance hack/cluster.sh down
#   sudo hack/conformance.sh --harness-check    check the harness without a Gateway controller:
#                                               mark the GatewayClass Accepted by hand, let the
#                                               suite apply its base manifests and fail waiting
#                                               for the Gateways, then check that every backend
#                                               pod is Ready, every Service's EndpointSlices list
#                                               exactly its pods, and echo-basic answers HTTP
#   sudo hack/conformance.sh -- FLAGS...        more flags for the suite (e.g. -debug)
#
# Environment:
#   SLUICE_CONFORMANCE_FEATURES  supported features claimed (-supported-features); default the
#                                profiles' core features and the extended ones whose tests pass
#                                (CLAIMED below; one is added only once its tests pass, issue 18).
#   SLUICE_CONFORMANCE_REPORT    report path (default conformance/report.yaml)
#   SLUICE_CONFORMANCE_VERSION   -version in the report (default v<Cargo.toml version>+g<commit>)
#   SLUICE_CONFORMANCE_LOG       the suite's output (default /tmp/$SLUICE_CLUSTER.log)
#   SLUICE_CLUSTER               cluster name (default sluice-conformance); SLUICE_BIN,
#                                SLUICE_KUBE_BINS as for hack/cluster.sh
#
# Measured (2 shared cores, 2026-12-06; conformance/README.md has the table): builds the first
# time 2 min 38 s (suite + echo-basic) and 47 s (CoreDNS), module downloads included, then
# cached (0 s, no Go needed); cluster up 9-15 s (0 s reused); CRDs 3-7 s; sluice 7-9 s; the
# suite 75-133 s for both profiles' core with the Gateway API controller, 34 s for one test;
# --harness-check 155 s of suite (its shortened Gateway wait) + 6-7 s of checks. End to end
# 1 min 50 s from a stopped cluster with everything built.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

GWAPI_VERSION=v1.6.3
COREDNS_VERSION=v1.12.2
# Bump when the wrapper modules below change: the cache directory is keyed by it.
RECIPE_REV=1
CLASS=sluice
PROFILES=GATEWAY-HTTP,GATEWAY-GRPC
# Claimed: the two profiles' core features and the extended ones whose tests all pass
# (conformance/report.yaml).
CLAIMED=Gateway,HTTPRoute,ReferenceGrant,GRPCRoute,GatewayPort8080,HTTPRouteQueryParamMatching
CLAIMED+=,HTTPRouteMethodMatching,HTTPRouteResponseHeaderModification,HTTPRoutePathRedirect
CLAIMED+=,HTTPRoutePortRedirect,HTTPRouteSchemeRedirect,HTTPRoute303RedirectStatusCode
CLAIMED+=,HTTPRoute307RedirectStatusCode,HTTPRoute308RedirectStatusCode,HTTPRouteHostRewrite
CLAIMED+=,HTTPRoutePathRewrite,HTTPRouteParentRefPort,HTTPRouteBackendProtocolH2C
CLAIMED+=,HTTPRouteBackendProtocolWebSocket,HTTPRouteNamedRouteRule,GRPCRouteNamedRouteRule
CLAIMED+=,GatewayHTTPListenerIsolation,HTTPRouteRequestTimeout,HTTPRouteBackendTimeout
FEATURES=${SLUICE_CONFORMANCE_FEATURES:-$CLAIMED}
REPORT=${SLUICE_CONFORMANCE_REPORT:-conformance/report.yaml}
export SLUICE_CLUSTER=${SLUICE_CLUSTER:-sluice-conformance}
export SLUICE_CLUSTER_DIR=${SLUICE_CLUSTER_DIR:-/tmp/$SLUICE_CLUSTER}
STATE=$SLUICE_CLUSTER_DIR
CACHE=${SLUICE_KUBE_BINS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-kube-bins}
CL=(bash "$ROOT/hack/cluster.sh")
NAMESPACES=(gateway-conformance-infra gateway-conformance-app-backend gateway-conformance-web-backend)

log() { echo "conformance: $(date +%T) $*" >&2; }
die() { log "error: $*"; exit 1; }
k() { "${CL[@]}" exec kubectl "$@"; }

run_test="" skip_tests="" keep=false harness_check=false extra=()
while (($#)); do
  case $1 in
    --run-test) run_test=${2:?--run-test NAME}; shift 2 ;;
    --skip-tests) skip_tests=${2:?--skip-tests A,B}; shift 2 ;;
    --keep) keep=true; shift ;;
    --harness-check) harness_check=true; shift ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) sed -n '2,51p' "$0"; exit 0 ;;
    *) sed -n '2,51p' "$0" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces), as hack/cluster.sh"

phases=()
# phase NAME START: record how long NAME took.
phase() { phases+=("$1 $((SECONDS - $2)) s"); log "$1: $((SECONDS - $2)) s"; }

# --- 1. build ----------------------------------------------------------------------------------

# build_suite: DIR with conformance.test, echo-basic, coredns and crds/ (the standard channel),
# built once per recipe; stdout is DIR. A cached run needs neither go nor the network.
build_suite() {
  local dir=$CACHE/gateway-conformance-$GWAPI_VERSION-coredns$COREDNS_VERSION-r$RECIPE_REV
  local recipe="sigs.k8s.io/gateway-api/conformance@$GWAPI_VERSION coredns@$COREDNS_VERSION r$RECIPE_REV"
  if [[ -x $dir/conformance.test && -x $dir/echo-basic && -x $dir/coredns && -f $dir/RECIPE &&
    $(cat "$dir/RECIPE") == "$recipe" ]]; then
    echo "$dir"
    return
  fi
  command -v go >/dev/null || die "go not found on PATH (needed once to build the suite)"
  log "building the Gateway API $GWAPI_VERSION suite, echo-basic and CoreDNS $COREDNS_VERSION"
  mkdir -p "$CACHE"
  local work out gwapi
  work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-conformance.XXXXXX")
  out=$(mktemp -d "$CACHE/.gateway-conformance.XXXXXX")
  # GOFLAGS=-mod=mod lets the wrapper modules resolve their requirements.
  (
    set -e
    export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
    # The suite: its module requires sigs.k8s.io/gateway-api at v0.0.0 replaced by "../" (the
    # repository); the wrapper replaces it with the same release instead. RunConformance reads
    # every -flag the suite documents.
    mkdir "$work/suite" && cd "$work/suite"
    go mod init sluice.invalid/gateway-conformance >/dev/null 2>&1
    go mod edit -require="sigs.k8s.io/gateway-api/conformance@$GWAPI_VERSION" \
      -replace="sigs.k8s.io/gateway-api=sigs.k8s.io/gateway-api@$GWAPI_VERSION"
    cat >conformance_test.go <<'EOF'
package conformance

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

func TestConformance(t *testing.T) { conformance.RunConformance(t) }
EOF
    go mod tidy
    go test -c -p 2 -trimpath -o "$out/conformance.test" .
    go build -p 2 -trimpath -o "$out/echo-basic" sigs.k8s.io/gateway-api/conformance/echo-basic
    gwapi=$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)
    mkdir "$out/crds"
    cp "$gwapi"/config/crd/standard/*.yaml "$out/crds/"
    # CoreDNS with only the plugins of the base manifests' Corefile (errors, log, forward,
    # whoami), in CoreDNS's own plugin order: the full build pulls every cloud SDK.
    mkdir "$work/coredns" && cd "$work/coredns"
    go mod init sluice.invalid/coredns >/dev/null 2>&1
    go mod edit -require="github.com/coredns/coredns@$COREDNS_VERSION"
    cat >main.go <<'EOF'
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/whoami"
)

func init() { dnsserver.Directives = []string{"errors", "log", "forward", "whoami"} }

func main() { coremain.Run() }
EOF
    go mod tidy
    go build -p 2 -trimpath -ldflags '-s -w' -o "$out/coredns" .
  ) >&2 || { rm -rf "$work" "$out"; die "building the suite failed"; }
  rm -rf "$work"
  printf '%s' "$recipe" >"$out/RECIPE"
  chmod 755 "$out"
  rm -rf "$dir"
  mv "$out" "$dir"
  echo "$dir"
}

t=$SECONDS
suite=$(build_suite)
SLUICE_KUBE_BINS=${SLUICE_KUBE_BINS:-$(bash hack/kube-bins.sh --print-dir)}
export SLUICE_KUBE_BINS
if [[ -z ${SLUICE_BIN-} ]]; then
  log "building sluice (cargo build --bin sluice)"
  cargo build --locked --bin sluice >&2
  SLUICE_BIN=$ROOT/target/debug/sluice
fi
export SLUICE_BIN
"${CL[@]}" build >/dev/null
phase build $t

# --- 2. cluster ----------------------------------------------------------------------------------

cluster_up() { [[ -f $STATE/supervisor.pid ]] && kill -0 "$(cat "$STATE/supervisor.pid")" 2>/dev/null; }
t=$SECONDS
reused=false
if cluster_up; then
  [[ -x $STATE/images/echo-basic && -x $STATE/images/coredns ]] ||
    die "cluster $SLUICE_CLUSTER is up without the echo-basic and coredns images (not started by this script): stop it with hack/cluster.sh down"
  reused=true
  # The node agent runs STATE/images/sluice at each container start: replace it atomically,
  # and restart sluice's pods below when it changed.
  if ! cmp -s "$SLUICE_BIN" "$STATE/images/sluice"; then
    cp "$SLUICE_BIN" "$STATE/images/.sluice.new"
    chmod 755 "$STATE/images/.sluice.new"
    mv "$STATE/images/.sluice.new" "$STATE/images/sluice"
    sluice_changed=true
  fi
  log "reusing cluster $SLUICE_CLUSTER"
else
  SLUICE_CLUSTER_IMAGES="echo-basic=$suite/echo-basic coredns=$suite/coredns" "${CL[@]}" up >/dev/null
fi
finish() {
  local rc=$?
  trap '' TERM INT HUP
  [[ -z ${suite_pid-} ]] || kill "$suite_pid" 2>/dev/null || true
  if ! $keep && ! $reused; then "${CL[@]}" down >&2 || rc=1; fi
  exit $rc
}
trap finish EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
phase cluster $t

# shellcheck source=lib/crd.sh
. "$ROOT/hack/lib/crd.sh"

# --- 3. Gateway API CRDs -----------------------------------------------------------------------

t=$SECONDS
k apply --server-side --force-conflicts -f "$suite/crds/" >/dev/null
# shellcheck disable=SC2046
wait_established k $(k get crd -o name) || die "the Gateway API CRDs are not Established after 60 s"
phase crds $t

# --- 4. sluice ---------------------------------------------------------------------------------

t=$SECONDS
# Every Gateway gets its own ClusterIP Service (gatewayClass.serviceType), whose address is the
# Gateway's status.addresses: the node agent's service proxy carries ClusterIP traffic here.
"${CL[@]}" exec helm upgrade --install sluice charts/sluice -n sluice-system --create-namespace \
  --set service.type=ClusterIP --set replicaCount=1 --set ingressClass.publishService=false \
  --set gatewayClass.enabled=true --set gatewayClass.name=$CLASS \
  --set gatewayClass.serviceType=ClusterIP --wait --timeout 180s >/dev/null
if [[ ${sluice_changed:-false} == true ]]; then
  k -n sluice-system rollout restart deployment -l app.kubernetes.io/instance=sluice >/dev/null
  k -n sluice-system rollout status deployment -l app.kubernetes.io/instance=sluice --timeout=180s >/dev/null
fi
if $harness_check; then
  # Stands in for the missing controller's one write, so the suite gets past its first check.
  k patch gatewayclass $CLASS --subresource=status --type=merge -p "{\"status\":{\"conditions\":[{
    \"type\":\"Accepted\",\"status\":\"True\",\"reason\":\"Accepted\",\"observedGeneration\":1,
    \"lastTransitionTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",
    \"message\":\"set by hack/conformance.sh --harness-check (no controller)\"}]}}" >/dev/null
fi
phase sluice $t

# --- 5. the suite ------------------------------------------------------------------------------

version=${SLUICE_CONFORMANCE_VERSION:-}
if [[ -z $version ]]; then
  version=v$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
  version+=+g$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  [[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || version+=.dirty
fi
args=(
  -test.run '^TestConformance$' -test.v -test.timeout 120m
  -gateway-class=$CLASS
  -conformance-profiles=$PROFILES
  -supported-features="$FEATURES"
  -report-output="$REPORT"
  -organization=sluice -project=sluice -url=https://github.com/sluice-dev/sluice
  -version="$version" -contact=https://github.com/sluice-dev/sluice/issues
)
[[ -z $run_test ]] || args+=(-run-test="$run_test")
[[ -z $skip_tests ]] || args+=(-skip-tests="$skip_tests")
if $keep || $harness_check; then args+=(-cleanup-base-resources=false); fi
# Without a controller the Gateways never become ready: fail after 150 s instead of 300 s.
# (The suite's format is NAME:SECONDS; it skips anything else without a word.)
if $harness_check; then args+=(-timeout-config-overrides=NamespacesMustBeReady:150); fi
mkdir -p "$(dirname "$REPORT")"
# Outside the cluster's state directory: it outlives `hack/cluster.sh down`.
out=${SLUICE_CONFORMANCE_LOG:-/tmp/$SLUICE_CLUSTER.log}
t=$SECONDS
log "running the suite (log: $out)"
rc=0
# In the background, so a signal reaches the EXIT trap (which stops it) at once.
"${CL[@]}" exec "$suite/conformance.test" "${args[@]}" "${extra[@]}" >"$out" 2>&1 &
suite_pid=$!
wait "$suite_pid" || rc=$?
suite_pid=""
phase suite $t

# --- 6. summary --------------------------------------------------------------------------------

# summarize LOG: one line per top-level test (go test -v marks: "--- PASS: TestConformance/X"),
# a failure with the first error line logged under that test (=== RUN/CONT/NAME switch tests
# when parallel ones interleave), then the counts.
summarize() {
  awk '
    function clean(s) { gsub(/[\t ]+/, " ", s); sub(/^ /, "", s); sub(/ $/, "", s); return s }
    /^=== (RUN|CONT|NAME) +TestConformance\// {
      cur = $3; sub(/^TestConformance\//, "", cur); sub(/\/.*/, "", cur); cap = ""; next
    }
    # testify: "Error:" and "Messages:" with their continuation lines, until the next label.
    cap != "" && /^[ \t]+Test: *\t/ { next }
    cap != "" && /^[ \t]+[A-Z][A-Za-z ]+: *\t/ && !/^[ \t]+Messages:/ { cap = "" }
    cap != "" && /^[ \t]+Messages:/ { why[cap] = why[cap] " | " clean(substr($0, index($0, ":") + 1)); next }
    cap != "" && /^[ \t]+\t/ { why[cap] = why[cap] " " clean($0); next }
    cap != "" { cap = "" }
    cur != "" && !(cur in why) && /^[ \t]+Error:/ {
      why[cur] = clean(substr($0, index($0, ":") + 1)); cap = cur; next
    }
    # Else the last line of the test that looks like a failed expectation (polls log many).
    cur != "" && /^ +[a-z_.-]+\.go:[0-9]+: .*([Ee]rror|[Ff]ail|timed out|[Ee]xpected|[Uu]nexpected)/ {
      l = clean($0); sub(/^[a-z_.-]+\.go:[0-9]+: [0-9TZ:.-]+: /, "", l)
      # The HTTP helpers print the whole request first; what was wrong follows "not ready yet:".
      if (match(l, /Host:[^ ]* Path:[^ ]*/)) p = substr(l, RSTART, RLENGTH); else p = ""
      if (match(l, /not ready yet: /)) l = "request " p ": " substr(l, RSTART + RLENGTH)
      last[cur] = l
    }
    # Route/Gateway polls also print the conditions found: keep the False ones (reason, message).
    cur != "" && /was not in conditions list \[\[/ {
      d = $0; sub(/.*conditions list \[\[/, "", d); sub(/\]\]$/, "", d)
      n2 = split(d, cs, /\} \{|^\{|\}$/); detail[cur] = ""
      for (j = 1; j <= n2; j++) if (cs[j] ~ /^[A-Za-z]+ False /) {
        c = cs[j]; sub(/ [0-9]+ [0-9-]+ [0-9:]+ [+-][0-9]+ UTC/, "", c); detail[cur] = detail[cur] " [" c "]"
      }
    }
    /^    --- (PASS|FAIL|SKIP): TestConformance\/[^\/ ]+ / {
      name = $3; sub(/^TestConformance\//, "", name)
      res = $2; sub(/:$/, "", res)
      n[res]++
      if (res == "SKIP") { skipped = skipped (skipped == "" ? "" : " ") name; next }
      # testify says what timed out; the last failed poll says why (a status condition, a reply).
      r = (name in why) ? why[name] ((name in last) ? " | last poll: " last[name] : "") : last[name]
      if (detail[name] != "") r = r detail[name]
      printf "%-4s %s%s\n", res, name, (res == "FAIL" && r != "") ? "  -- " substr(r, 1, 500) : ""
    }
    /^--- FAIL: TestConformance / { top = 1 }
    END {
      if (skipped != "") printf "SKIP (not claimed or not in the profiles): %s\n", skipped
      printf "%d passed, %d failed, %d skipped\n", n["PASS"], n["FAIL"], n["SKIP"]
      if (top && n["FAIL"] == 0) print "TestConformance itself failed (set-up): see the log"
    }' "$1"
}

echo "== Gateway API $GWAPI_VERSION conformance: sluice $version, features $FEATURES"
summary=$(summarize "$out")
echo "$summary"
if [[ -f $REPORT ]]; then
  echo "== $REPORT (profiles)"
  awk '/^  name: / { name = $2 } /^  summary: / { sub(/^  summary: /, ""); s = $0 }
    /^- / && name != "" { print name ": " s; name = ""; s = "" }
    END { if (name != "") print name ": " s }' "$REPORT"
fi
# A failure before any test ran (set-up: GatewayClass, base manifests, Gateways not ready).
if ((rc != 0)) && ! grep -qE '^(PASS|FAIL) ' <<<"$summary"; then
  echo "== why the run failed (from $out)"
  grep -E '^\s+(Error|Messages):' "$out" | tail -n 4 | cut -c1-300
  grep -E '^ +helpers\.go:[0-9]+: ' "$out" | tail -n 1 | cut -c1-300
fi

# --- harness check -----------------------------------------------------------------------------

# Without a controller: the backends the suite deployed must be real (Ready pods, EndpointSlices
# listing exactly them, echo-basic's JSON), and the suite must have stopped on the Gateways.
if $harness_check; then
  t=$SECONDS
  bad=()
  for ns in "${NAMESPACES[@]}"; do
    k -n "$ns" wait --for=condition=Ready pod --all --timeout=180s >/dev/null ||
      bad+=("pods not Ready in $ns: $(k -n "$ns" get pods --no-headers | grep -v ' 1/1 ' | tr -s ' ' | paste -sd ';')")
  done
  pods_total=$(k get pods -A --no-headers | grep -c '^gateway-conformance-')
  checked=0
  while read -r ns svc sel; do
    [[ -n $sel ]] || continue
    checked=$((checked + 1))
    want=$(k -n "$ns" get pods -l "$sel" --field-selector=status.phase=Running \
      -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}' | sort | paste -sd ' ')
    got=""
    for _ in $(seq 1 30); do
      got=$(k -n "$ns" get endpointslices -l "kubernetes.io/service-name=$svc" \
        -o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{"\n"}{end}' | sort -u | paste -sd ' ')
      [[ -n $got && $got == "$want" ]] && break
      sleep 1
    done
    [[ -n $got && $got == "$want" ]] || bad+=("EndpointSlices of $ns/$svc list [$got], its pods are [$want]")
  done < <(k get services -A -o go-template='{{range .items}}{{.metadata.namespace}} {{.metadata.name}} {{range $k, $v := .spec.selector}}{{$k}}={{$v}},{{end}}{{"\n"}}{{end}}' |
    grep '^gateway-conformance-' | sed 's/,$//')
  ip=$(k -n gateway-conformance-infra get pods -l app=infra-backend-v1 -o jsonpath='{.items[0].status.podIP}')
  pod=$(k -n gateway-conformance-infra get pods -l app=infra-backend-v1 -o jsonpath='{.items[0].metadata.name}')
  echo=$("${CL[@]}" exec curl -sS -m 5 -H 'Host: harness.example' "http://$ip:3000/harness-check?x=1" 2>&1 || true)
  for want in '"path": "/harness-check?x=1"' '"host": "harness.example"' "\"namespace\": \"gateway-conformance-infra\"" "\"pod\": \"$pod\""; do
    [[ $echo == *"$want"* ]] || { bad+=("echo-basic at $ip:3000 answered [$echo], want $want"); break; }
  done
  # The suite's last wait message must be about a Gateway (its conditions never written, or
  # not Accepted/Programmed), not about a pod.
  last=$(grep -E '^ +helpers\.go:[0-9]+: ' "$out" | tail -n 1 | cut -c1-300)
  [[ $last =~ Gateway\ gateway-conformance-[a-z-]+/[a-z-]+\ (not\ Accepted|not\ Programmed|expected\ observedGeneration) ]] ||
    bad+=("the suite's last wait was not for a Gateway: [$last] (see $out)")
  phase harness-check $t
  echo "== harness check: $pods_total pods in ${NAMESPACES[*]}; $checked Services with a selector"
  echo "echo-basic $pod ($ip:3000): $(tr -d '\n' <<<"$echo" | tr -s ' ' | cut -c1-300)"
  echo "the suite's last wait: $(sed 's/^ *//' <<<"$last")"
  if ((${#bad[@]})); then
    printf 'FAIL %s\n' "${bad[@]}"
    rc=1
  else
    echo "ok: every backend pod Ready, every Service's EndpointSlices list exactly its Running pods, echo-basic echoes; the suite stopped waiting for a Gateway, as it must without a controller"
    rc=0
  fi
fi
echo "== phases: ${phases[*]}"
exit $rc
