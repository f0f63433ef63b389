#!/usr/bin/env bash
# Verify the packaging (charts/sluice, manifests/sluice.yaml) offline and against a real
# kube-apiserver: lint, render, schema, drift, server-side dry-run, install, least-privilege RBAC
# with the chart's own ServiceAccount token, and the restricted Pod Security Standard.
#
# Usage:
#   hack/check-packaging.sh           everything (what CI runs): the offline checks, then
#                                     tests/packaging.rs in the private network namespace of
#                                     hack/in-netns.sh, which starts etcd + kube-apiserver
#                                     (tests/support/kube.rs) and runs this script's `cluster`
#   hack/check-packaging.sh static    the offline checks only (needs helm, no API server)
#   hack/check-packaging.sh cluster   the API-server checks only, against the cluster in
#                                     $KUBECONFIG; it installs releases, namespaces and CRDs
#                                     and never deletes them, so it runs only with
#                                     SLUICE_PACKAGING_THROWAWAY_CLUSTER=1 (tests/packaging.rs)
#
# Environment:
#   SLUICE_KUBE_BINS  directory with kubectl and helm (default: hack/kube-bins.sh --print-dir,
#                     which builds them once from Go modules and caches them)
#   SLUICE_BIN        optional: a sluice binary; when set and executable, `cluster` also runs
#                     `sluice controller` out of cluster with the chart's ServiceAccount token,
#                     applies BackendPools and fails on any `forbidden` in its log
set -euo pipefail

# shellcheck source=lib/crd.sh
. "$(dirname "$0")/lib/crd.sh"
cd "$(dirname "$0")/.."

CHART=charts/sluice
NS=sluice-system # the manifests' namespace; also the namespace of the default release

mode=${1:-all}
case $mode in
  all | static | cluster) ;;
  -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
  *) echo "usage: $0 [static|cluster]" >&2; exit 2 ;;
esac

if [[ -z ${SLUICE_KUBE_BINS-} ]]; then
  SLUICE_KUBE_BINS=$(hack/kube-bins.sh --print-dir)
fi
export SLUICE_KUBE_BINS
bins=$SLUICE_KUBE_BINS

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-packaging.XXXXXX")
controller_pid=
cleanup() {
  if [[ -n $controller_pid ]]; then kill "$controller_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Helm's and kubectl's caches and config stay in the work directory, never in $HOME.
export HELM_CACHE_HOME=$work/helm/cache HELM_CONFIG_HOME=$work/helm/config HELM_DATA_HOME=$work/helm/data
export KUBECACHEDIR=$work/kube-cache

passed=0
failures=()
log() { echo "check-packaging: $*" >&2; }
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failures+=("$*"); echo "FAIL $*"; }
die() { log "error: $*"; exit 1; }
# Stop when anything failed so far, listing what: after a step later checks depend on, and at
# the end (other failures are collected, so one run reports them all).
end_section() {
  if ((${#failures[@]})); then
    log "${#failures[@]} check(s) failed in $1:"
    printf '  %s\n' "${failures[@]}" >&2
    exit 1
  fi
}

helm() { timeout 120 "$bins/helm" "$@"; }
kubectl() { timeout 120 "$bins/kubectl" --request-timeout=60s "$@"; }

# ---------------------------------------------------------------------------------------------
# Offline: lint, render, values schema, drift
# ---------------------------------------------------------------------------------------------

# kinds FILE: the rendered kinds, one line, in order.
kinds() { grep '^kind: ' "$1" | sed 's/^kind: //' | tr '\n' ' ' | sed 's/ $//'; }

# expect_render_fails DESCRIPTION EXPECTED_MESSAGE HELM_TEMPLATE_ARGS...
expect_render_fails() {
  local what=$1 expected=$2 out
  shift 2
  if out=$(helm template bad "$CHART" "$@" 2>&1 >/dev/null); then
    bad "values: $what was accepted"
  elif [[ $out != *"$expected"* ]]; then
    bad "values: $what failed for another reason: $out"
  else
    # The schema's own words ("- at '/replicaCount': minimum: got 0, want 1") when it has them.
    local why
    why=$(grep -m1 -e "^- at '" <<<"$out" || grep -m1 -F -- "$expected" <<<"$out")
    ok "values: $what is refused (${why#Error: })"
  fi
}

# The chart rendered as the releases of the API-server checks will install it.
render_variants() {
  helm template sluice "$CHART" -n "$NS" >"$work/default.yaml" ||
    die "helm template with default values failed"
  helm template edge "$CHART" -n sluice-edge -f "$CHART/ci/all-features-values.yaml" \
    --api-versions monitoring.coreos.com/v1/ServiceMonitor --api-versions monitoring.coreos.com/v1/PrometheusRule \
    >"$work/all-features.yaml" ||
    die "helm template with ci/all-features-values.yaml failed"
  helm template sluice-team-a "$CHART" -n sluice-team-a-system -f "$CHART/ci/namespaced-values.yaml" \
    >"$work/namespaced.yaml" || die "helm template with ci/namespaced-values.yaml failed"
  helm template edge-ds "$CHART" -n sluice-edge -f "$CHART/ci/daemonset-values.yaml" \
    >"$work/daemonset.yaml" || die "helm template with ci/daemonset-values.yaml failed"
}

static_checks() {
  log "helm $(helm version --short), chart $CHART"

  local values
  for values in "" ci/all-features-values.yaml ci/namespaced-values.yaml ci/daemonset-values.yaml; do
    local args=(--strict)
    [[ -z $values ]] || args+=(-f "$CHART/$values")
    if out=$(helm lint "$CHART" "${args[@]}" 2>&1); then
      ok "helm lint --strict ${values:-(default values)}"
    else
      bad "helm lint --strict ${values:-(default values)}: $out"
    fi
  done

  render_variants
  local got want
  got=$(kinds "$work/default.yaml")
  want="PodDisruptionBudget ServiceAccount ClusterRole ClusterRole ClusterRoleBinding ClusterRoleBinding Role RoleBinding Service Service Deployment IngressClass"
  [[ $got == "$want" ]] && ok "helm template (defaults): $got" || bad "helm template (defaults) renders [$got], want [$want]"

  got=$(kinds "$work/all-features.yaml")
  want="NetworkPolicy PodDisruptionBudget ServiceAccount ConfigMap ClusterRole ClusterRole ClusterRoleBinding ClusterRoleBinding Role RoleBinding Service Service Service Deployment HorizontalPodAutoscaler IngressClass PrometheusRule ServiceMonitor"
  [[ $got == "$want" ]] && ok "helm template (all features): $got" || bad "helm template (all features) renders [$got], want [$want]"

  got=$(kinds "$work/daemonset.yaml")
  want="PodDisruptionBudget ServiceAccount ClusterRole ClusterRole ClusterRoleBinding ClusterRoleBinding Role RoleBinding Service Service DaemonSet IngressClass"
  [[ $got == "$want" ]] && ok "helm template (DaemonSet): $got" || bad "helm template (DaemonSet) renders [$got], want [$want]"
  grep -q '^  replicas:' "$work/daemonset.yaml" "$work/all-features.yaml" &&
    bad "replicas rendered for a DaemonSet or an autoscaled Deployment" ||
    ok "no replicas for a DaemonSet or an autoscaled Deployment"

  # gatewayClass.enabled (off by default: it needs the Gateway API CRDs) adds one GatewayClass.
  helm template gw "$CHART" -n sluice-system --set gatewayClass.enabled=true --set gatewayClass.name=edge \
    >"$work/gatewayclass.yaml" || die "helm template with gatewayClass.enabled=true failed"
  got=$(sed -n '/^kind: GatewayClass/,/^---/p' "$work/gatewayclass.yaml" | grep -E '^  name: |controllerName: ' | sed 's/^ *//' | paste -sd ' ')
  [[ $got == "name: edge controllerName: sluice.dev/gateway-controller" ]] &&
    ok "gatewayClass.enabled renders GatewayClass edge (controllerName sluice.dev/gateway-controller)" ||
    bad "gatewayClass.enabled=true renders [$got], want GatewayClass edge with controllerName sluice.dev/gateway-controller"
  # ... and, with the default serviceType, the flags for a Service per Gateway and the Role
  # that lets sluice write them (only in its own namespace).
  got=$(grep -oE -e '--gateway-(service-type|service-selector|port-range)=[^ ]*' "$work/gatewayclass.yaml" | paste -sd ' ')
  want="--gateway-service-type=LoadBalancer --gateway-service-selector=app.kubernetes.io/name=sluice,app.kubernetes.io/instance=gw --gateway-port-range=20000-20999"
  [[ $got == "$want" ]] && ok "gatewayClass.serviceType: $got" || bad "gatewayClass flags [$got], want [$want]"
  got=$(sed -n '/^kind: Role$/,/^---/p' "$work/gatewayclass.yaml" | grep -A3 'name: gw-sluice-gateway-services' | grep -E 'namespace:' | sed 's/^ *//')
  [[ $got == "namespace: sluice-system" ]] && ok "Role gw-sluice-gateway-services in the release namespace" ||
    bad "Role for the Gateway Services: [$got], want it in sluice-system"

  helm template edge "$CHART" -n sluice-edge -f "$CHART/ci/all-features-values.yaml" >"$work/no-monitoring-api.yaml"
  if grep -q -e '^kind: ServiceMonitor' -e '^kind: PrometheusRule' "$work/no-monitoring-api.yaml"; then
    bad "a ServiceMonitor or PrometheusRule is rendered although monitoring.coreos.com/v1 is not served"
  else
    ok "no ServiceMonitor or PrometheusRule without the monitoring.coreos.com/v1 API"
  fi
  grep -q '^kind: ConfigMap' "$work/no-monitoring-api.yaml" &&
    ok "the dashboard ConfigMap needs no prometheus-operator API" ||
    bad "no dashboard ConfigMap with metrics.dashboard.enabled"
  # The dashboard and the rules are the chart's files verbatim (tests/packaging.rs compares
  # them parsed); here, only that the sidecar label and the release's labels are on them.
  grep -A12 '^kind: ConfigMap' "$work/all-features.yaml" | grep -q 'grafana_dashboard: "1"' &&
    ok "the dashboard ConfigMap carries grafana_dashboard: \"1\"" ||
    bad "the dashboard ConfigMap lacks the grafana_dashboard label"

  got=$(kinds "$work/namespaced.yaml")
  # The one cluster-wide grant of a namespaced install: reading IngressClasses (cluster-scoped).
  want="PodDisruptionBudget ServiceAccount ClusterRole ClusterRoleBinding Role Role RoleBinding RoleBinding Service Service Deployment IngressClass"
  [[ $got == "$want" ]] && ok "helm template (watchNamespace): $got" || bad "helm template (watchNamespace) renders [$got], want [$want]"

  helm template one "$CHART" --set replicaCount=1 --set controller.leaderElection=false >"$work/single.yaml"
  if grep -q -- '--leader-elect' "$work/single.yaml" || grep -q 'leader-election' "$work/single.yaml"; then
    bad "leaderElection=false still renders --leader-elect or the Lease Role"
  else
    ok "replicaCount=1 with leaderElection=false renders no Lease access"
  fi

  # Bad values fail before anything reaches a cluster: the schema, then the chart's own rules.
  local schema="values don't meet the specifications of the schema"
  expect_render_fails "replicaCount=0" "$schema" --set replicaCount=0
  expect_render_fails "replicaCount=two" "$schema" --set replicaCount=two
  expect_render_fails "an unknown top-level key" "additional properties 'replicas' not allowed" --set replicas=3
  expect_render_fails "an unknown nested key" "additional properties 'typ' not allowed" --set service.typ=NodePort
  expect_render_fails "service.type=Ingress" "$schema" --set service.type=Ingress
  expect_render_fails "service.http.targetPort=70000" "$schema" --set service.http.targetPort=70000
  expect_render_fails "an extra port named admin" "$schema" \
    --set 'service.extraPorts[0].name=admin' --set 'service.extraPorts[0].port=1' --set 'service.extraPorts[0].targetPort=1'
  expect_render_fails "an extra port without targetPort" "$schema" \
    --set 'service.extraPorts[0].name=pg' --set 'service.extraPorts[0].port=5432'
  expect_render_fails "controller.logFormat=xml" "$schema" --set controller.logFormat=xml
  expect_render_fails "controller.name with capitals" "$schema" --set controller.name=Sluice
  expect_render_fails "watchNamespace with a slash" "$schema" --set watchNamespace=a/b
  expect_render_fails "image.pullPolicy=Sometimes" "$schema" --set image.pullPolicy=Sometimes
  expect_render_fails "a malformed image.digest" "$schema" --set image.digest=latest
  expect_render_fails "runAs.user=0 (root)" "$schema" --set runAs.user=0
  expect_render_fails "two replicas without leader election" "controller.leaderElection must be true" \
    --set controller.leaderElection=false
  expect_render_fails "a DaemonSet without leader election" "with kind DaemonSet or autoscaling" \
    --set kind=DaemonSet --set replicaCount=1 --set controller.leaderElection=false
  expect_render_fails "autoscaling with maxReplicas below minReplicas" "autoscaling.maxReplicas must be at least" \
    --set autoscaling.enabled=true --set autoscaling.minReplicas=5 --set autoscaling.maxReplicas=2
  expect_render_fails "kind=StatefulSet" "$schema" --set kind=StatefulSet
  expect_render_fails "a ServiceMonitor without the admin Service" "metrics.serviceMonitor.enabled needs admin.service.enabled" \
    --set metrics.serviceMonitor.enabled=true --set admin.service.enabled=false
  expect_render_fails "serviceMonitor at the top level (now metrics.serviceMonitor)" "additional properties 'serviceMonitor' not allowed" \
    --set serviceMonitor.enabled=true
  expect_render_fails "metrics.prometheusRule.enabled=yes" "$schema" --set-string metrics.prometheusRule.enabled=yes
  expect_render_fails "metrics.dashboard.namespace with a slash" "$schema" --set metrics.dashboard.namespace=a/b
  expect_render_fails "service.internal.enabled=yes" "$schema" --set-string service.internal.enabled=yes
  expect_render_fails "a Service with no port" "service.enabled needs at least one port" \
    --set service.http.enabled=false --set service.https.enabled=false
  expect_render_fails "two ports on one container port" "both target container port 8080" \
    --set service.https.targetPort=8080
  expect_render_fails "admin.port on a listener port" "admin.port 8443 is also the listener port https" \
    --set admin.port=8443
  expect_render_fails "per-Gateway Services outside watchNamespace" \
    "per-Gateway Services live in the release namespace" \
    --set gatewayClass.enabled=true --set watchNamespace=elsewhere

  if out=$(hack/render-manifests.sh --check 2>&1); then
    ok "charts/sluice/crds/backendpool.yaml equals crds/backendpool.yaml; manifests/sluice.yaml is the chart rendered with defaults"
  else
    bad "packaging drift (run hack/render-manifests.sh): $out"
  fi
  end_section "the offline checks"
}

# ---------------------------------------------------------------------------------------------
# Against the API server in $KUBECONFIG
# ---------------------------------------------------------------------------------------------

# no_warnings WHAT STDERR_FILE: fail on any API-server warning (Pod Security or other).
no_warnings() {
  if grep -qi 'warning' "$2"; then
    bad "$1 printed warnings: $(cat "$2")"
  else
    ok "$1: no warnings"
  fi
}

# wait_until SECONDS DESCRIPTION CMD...: poll CMD every half second.
wait_until() {
  local limit=$1 what=$2
  local deadline=$((SECONDS + limit))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      bad "$what: not within $limit s"
      return 1
    fi
    sleep 0.5
  done
}

# token_kubeconfig NAMESPACE SERVICEACCOUNT FILE: a kubeconfig that authenticates with a
# freshly minted token of that ServiceAccount and nothing else.
token_kubeconfig() {
  local token server ca
  token=$(kubectl create token "$2" -n "$1" --duration=30m)
  server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')
  cat >"$3" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "$server", certificate-authority: "$ca"}
users:
- name: $2
  user: {token: "$token"}
contexts:
- name: $2
  context: {cluster: e2e, user: $2, namespace: $1}
current-context: $2
EOF
  local who
  who=$(kubectl --kubeconfig "$3" auth whoami -o jsonpath='{.status.userInfo.username}')
  if [[ $who == "system:serviceaccount:$1:$2" ]]; then
    ok "token of ServiceAccount $1/$2 authenticates as $who"
  else
    bad "token of $1/$2 authenticates as '$who'"
  fi
}

# can KUBECONFIG yes|no VERB RESOURCE [kubectl auth can-i flags...]
can() {
  local kc=$1 want=$2 verb=$3 resource=$4 got
  shift 4
  got=$(kubectl --kubeconfig "$kc" auth can-i "$verb" "$resource" "$@" 2>/dev/null) || true
  got=${got%%$'\n'*}
  if [[ $got == "$want" ]]; then
    ok "can-i $verb $resource $* -> $got"
  else
    bad "can-i $verb $resource $* -> '${got:-error}', want $want"
  fi
}

# rules_of KIND NAME [-n NS]: the object's rules, normalized to compact JSON.
rules_of() {
  kubectl get "$@" -o json |
    jq -c '[.rules[] | {g: .apiGroups, r: .resources, n: (.resourceNames // []), v: .verbs}]'
}

WATCH_RULES='[{"g":["sluice.dev"],"r":["backendpools"],"n":[],"v":["get","list","watch"]},'\
'{"g":["sluice.dev"],"r":["backendpools/status"],"n":[],"v":["get","patch","update"]},'\
'{"g":["discovery.k8s.io"],"r":["endpointslices"],"n":[],"v":["get","list","watch"]},'\
'{"g":[""],"r":["services"],"n":[],"v":["get","list","watch"]},'\
'{"g":[""],"r":["secrets"],"n":[],"v":["get","list","watch"]},'\
'{"g":["networking.k8s.io"],"r":["ingresses"],"n":[],"v":["get","list","watch"]},'\
'{"g":["networking.k8s.io"],"r":["ingresses/status"],"n":[],"v":["patch"]},'\
'{"g":["gateway.networking.k8s.io"],"r":["gateways","httproutes","grpcroutes","referencegrants"],"n":[],"v":["get","list","watch"]},'\
'{"g":["gateway.networking.k8s.io"],"r":["gateways/status","httproutes/status","grpcroutes/status"],"n":[],"v":["patch"]},'\
'{"g":["events.k8s.io"],"r":["events"],"n":[],"v":["create","patch"]},'\
'{"g":[""],"r":["events"],"n":[],"v":["create","patch"]}]'
lease_rules() {
  printf '[{"g":["coordination.k8s.io"],"r":["leases"],"n":[],"v":["create"]},'
  printf '{"g":["coordination.k8s.io"],"r":["leases"],"n":["%s"],"v":["get","update","patch"]}]' "$1"
}

# expect_rules WHAT WANT KIND NAME [-n NS]
expect_rules() {
  local what=$1 want=$2 got
  shift 2
  got=$(rules_of "$@")
  if [[ $got == "$want" ]]; then ok "$what: exactly the expected rules"; else bad "$what: rules $got, want $want"; fi
  if jq -e '[.[] | .g[], .r[], .v[]] | index("*")' <<<"$got" >/dev/null; then bad "$what: a wildcard"; fi
}

# The verbs every install grants in the watched scope (SCOPE: -A or -n NS).
expect_watch_access() {
  local kc=$1 scope=("${@:2}") v
  for v in get list watch; do
    can "$kc" yes "$v" backendpools.sluice.dev "${scope[@]}"
    can "$kc" yes "$v" endpointslices.discovery.k8s.io "${scope[@]}"
    can "$kc" yes "$v" services "${scope[@]}"
    can "$kc" yes "$v" secrets "${scope[@]}"
    can "$kc" yes "$v" ingresses.networking.k8s.io "${scope[@]}"
    # IngressClasses and Namespaces (labels, for Gateway listeners' allowedRoutes selectors)
    # are cluster-scoped: readable whatever the watched scope. (GatewayClasses too; can-i
    # cannot tell without the Gateway API CRDs, the rules check above covers them.)
    can "$kc" yes "$v" ingressclasses.networking.k8s.io
    can "$kc" yes "$v" namespaces
  done
  can "$kc" yes patch ingresses.networking.k8s.io --subresource=status "${scope[@]}"
  for v in get patch update; do
    can "$kc" yes "$v" backendpools.sluice.dev --subresource=status "${scope[@]}"
  done
  for v in create patch; do
    can "$kc" yes "$v" events.events.k8s.io "${scope[@]}"
    can "$kc" yes "$v" events "${scope[@]}"
  done
}

# What no install grants, anywhere (SCOPE: -A or -n NS).
expect_no_extra_access() {
  local kc=$1 scope=("${@:2}") v
  can "$kc" no '*' '*' "${scope[@]}"
  for v in create update patch delete deletecollection; do
    can "$kc" no "$v" backendpools.sluice.dev "${scope[@]}"
    can "$kc" no "$v" secrets "${scope[@]}"
    can "$kc" no "$v" services "${scope[@]}"
    can "$kc" no "$v" endpointslices.discovery.k8s.io "${scope[@]}"
    can "$kc" no "$v" ingresses.networking.k8s.io "${scope[@]}"
    can "$kc" no "$v" ingressclasses.networking.k8s.io
  done
  can "$kc" no get pods "${scope[@]}"
  can "$kc" no delete pods "${scope[@]}"
  can "$kc" no create pods/exec "${scope[@]}"
  can "$kc" no get configmaps "${scope[@]}"
  can "$kc" no create serviceaccounts/token "${scope[@]}"
  can "$kc" no delete events "${scope[@]}"
  can "$kc" no delete backendpools.sluice.dev --subresource=status "${scope[@]}"
  can "$kc" no list leases.coordination.k8s.io "${scope[@]}"
}

expect_cluster_scope_denied() {
  local kc=$1
  can "$kc" no list nodes
  can "$kc" no create namespaces
  can "$kc" no delete namespaces
  can "$kc" no create customresourcedefinitions.apiextensions.k8s.io
  can "$kc" no create clusterrolebindings.rbac.authorization.k8s.io
  can "$kc" no escalate clusterroles.rbac.authorization.k8s.io
  can "$kc" no bind clusterroles.rbac.authorization.k8s.io
  can "$kc" no impersonate users
  can "$kc" no impersonate serviceaccounts -A
}

# expect_lease_access KUBECONFIG NAMESPACE LEASE
expect_lease_access() {
  local kc=$1 ns=$2 lease=$3 v
  can "$kc" yes create leases.coordination.k8s.io -n "$ns"
  for v in get update patch; do
    can "$kc" yes "$v" "leases.coordination.k8s.io/$lease" -n "$ns"
    can "$kc" no "$v" leases.coordination.k8s.io/another-controller -n "$ns"
    can "$kc" no "$v" "leases.coordination.k8s.io/$lease" -n kube-system
  done
  can "$kc" no delete "leases.coordination.k8s.io/$lease" -n "$ns"
  can "$kc" no create leases.coordination.k8s.io -n default
}

# CRDs standing in for prometheus-operator's, so `.Capabilities` sees the API.
SERVICEMONITOR_CRD='apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}'
PROMETHEUSRULE_CRD=${SERVICEMONITOR_CRD//servicemonitors/prometheusrules}
PROMETHEUSRULE_CRD=${PROMETHEUSRULE_CRD//ServiceMonitor/PrometheusRule}
PROMETHEUSRULE_CRD=${PROMETHEUSRULE_CRD//servicemonitor/prometheusrule}

cluster_checks() {
  [[ -n ${KUBECONFIG-} ]] || die "cluster checks need KUBECONFIG (a throw-away cluster; see tests/packaging.rs)"
  [[ ${SLUICE_PACKAGING_THROWAWAY_CLUSTER-} == 1 ]] ||
    die "cluster checks install into \$KUBECONFIG and leave everything behind; set SLUICE_PACKAGING_THROWAWAY_CLUSTER=1 only for a throw-away cluster"
  command -v jq >/dev/null || die "jq not found on PATH"
  local server
  server=$(kubectl version -o json | jq -r .serverVersion.gitVersion)
  log "API server $server at $(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"

  # -- Server-side dry runs ---------------------------------------------------------------------
  # The manifest's Namespace for real (its objects cannot be dry-run into a namespace that does
  # not exist), then every object of manifests/sluice.yaml; sluice-system warns on restricted.
  sed -n '/^kind: Namespace$/,/^---$/p' manifests/sluice.yaml | sed '$d' |
    { echo "apiVersion: v1"; cat; } >"$work/namespace.yaml"
  kubectl apply -f "$work/namespace.yaml" >/dev/null
  if kubectl apply --dry-run=server -f manifests/sluice.yaml >"$work/out" 2>"$work/err"; then
    ok "kubectl apply --dry-run=server -f manifests/sluice.yaml: $(wc -l <"$work/out") objects accepted"
    no_warnings "server-side dry run of manifests/sluice.yaml" "$work/err"
  else
    bad "server-side dry run of manifests/sluice.yaml: $(cat "$work/err")"
  fi

  kubectl create namespace team-a >/dev/null
  kubectl create namespace sluice-team-a-system >/dev/null
  kubectl create namespace sluice-edge >/dev/null
  kubectl apply -f - <<<"$SERVICEMONITOR_CRD" >/dev/null
  kubectl apply -f - <<<"$PROMETHEUSRULE_CRD" >/dev/null
  wait_established kubectl crd/servicemonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com
  local f
  for f in namespaced all-features daemonset; do
    if kubectl apply --dry-run=server -f "$work/$f.yaml" >"$work/out" 2>"$work/err"; then
      ok "server-side dry run of the chart rendered with ci/$f-values.yaml: $(wc -l <"$work/out") objects accepted"
      no_warnings "server-side dry run of ci/$f-values.yaml" "$work/err"
    else
      bad "server-side dry run of ci/$f-values.yaml: $(cat "$work/err")"
    fi
  done

  # -- helm install ---------------------------------------------------------------------------
  # Never --wait: no controller-manager runs here, so no Deployment ever becomes ready.
  if helm install sluice "$CHART" -n "$NS" >"$work/notes" 2>"$work/err"; then
    ok "helm install sluice $CHART -n $NS"
    no_warnings "helm install (default values)" "$work/err"
    grep -q "kubectl get bp" "$work/notes" && ok "NOTES tell the next command (kubectl apply, kubectl get bp)" ||
      bad "NOTES do not name the next command: $(cat "$work/notes")"
  else
    bad "helm install (default values): $(cat "$work/err")"
    end_section "helm install"
  fi
  wait_established kubectl crd/backendpools.sluice.dev &&
    ok "the chart installed the BackendPool CRD and it is Established" || bad "CRD backendpools.sluice.dev not Established"
  local objects
  objects=$(kubectl get -n "$NS" deployment/sluice serviceaccount/sluice service/sluice service/sluice-admin \
    poddisruptionbudget/sluice role/sluice-leader-election rolebinding/sluice-leader-election -o name 2>&1) &&
    ok "release objects exist: $(tr '\n' ' ' <<<"$objects")" || bad "release objects missing: $objects"
  kubectl get clusterrole/sluice clusterrolebinding/sluice -o name >/dev/null &&
    ok "ClusterRole and ClusterRoleBinding sluice exist" || bad "ClusterRole/ClusterRoleBinding sluice missing"
  [[ $(kubectl get service sluice -n "$NS" -o jsonpath='{.spec.type} {.spec.ports[*].port}->{.spec.ports[*].targetPort}') == "LoadBalancer 80 443->http https" ]] &&
    ok "Service sluice: LoadBalancer 80->http(8080), 443->https(8443)" ||
    bad "Service sluice: $(kubectl get service sluice -n "$NS" -o jsonpath='{.spec.type} {.spec.ports}')"

  # The CRD is in place now: the other releases leave it alone.
  if helm install sluice-team-a "$CHART" -n sluice-team-a-system -f "$CHART/ci/namespaced-values.yaml" --skip-crds \
    >/dev/null 2>"$work/err"; then
    ok "helm install sluice-team-a (watchNamespace=team-a)"
    no_warnings "helm install (watchNamespace)" "$work/err"
  else
    bad "helm install (watchNamespace): $(cat "$work/err")"
  fi

  # The ServiceMonitor and PrometheusRule follow the API: the stand-in CRDs are installed now.
  if helm install edge "$CHART" -n sluice-edge -f "$CHART/ci/all-features-values.yaml" --skip-crds >"$work/notes" 2>"$work/err"; then
    ok "helm install edge (ci/all-features-values.yaml)"
    no_warnings "helm install (all features)" "$work/err"
    kubectl get servicemonitor/edge-sluice prometheusrule/edge-sluice networkpolicy/edge-sluice \
      configmap/edge-sluice-dashboard -n sluice-edge -o name >/dev/null &&
      ok "ServiceMonitor, PrometheusRule (where the API is served), NetworkPolicy and dashboard ConfigMap created" ||
      bad "ServiceMonitor, PrometheusRule, NetworkPolicy or dashboard ConfigMap edge-sluice missing"
  else
    bad "helm install (all features): $(cat "$work/err")"
  fi

  # Bad values fail at install too, and leave nothing behind.
  if helm install bad "$CHART" -n "$NS" --set replicaCount=0 >/dev/null 2>"$work/err"; then
    bad "helm install accepted replicaCount=0"
  elif grep -q "values don't meet the specifications of the schema" "$work/err" &&
    ! helm status bad -n "$NS" >/dev/null 2>&1; then
    ok "helm install with replicaCount=0 fails on the schema and creates no release"
  else
    bad "helm install with replicaCount=0 failed otherwise: $(cat "$work/err")"
  fi

  # -- Least privilege, as the chart's ServiceAccount ---------------------------------------------
  expect_rules "ClusterRole sluice" "$WATCH_RULES" clusterrole/sluice
  expect_rules "ClusterRole sluice-ingressclasses" \
    '[{"g":["networking.k8s.io"],"r":["ingressclasses"],"n":[],"v":["get","list","watch"]},'\
'{"g":["gateway.networking.k8s.io"],"r":["gatewayclasses"],"n":[],"v":["get","list","watch"]},'\
'{"g":["gateway.networking.k8s.io"],"r":["gatewayclasses/status"],"n":[],"v":["patch"]},'\
'{"g":[""],"r":["namespaces"],"n":[],"v":["get","list","watch"]}]' \
    clusterrole/sluice-ingressclasses
  expect_rules "Role $NS/sluice-leader-election" "$(lease_rules sluice)" role/sluice-leader-election -n "$NS"
  expect_rules "Role team-a/sluice-team-a" "$WATCH_RULES" role/sluice-team-a -n team-a
  expect_rules "Role sluice-team-a-system/sluice-team-a-leader-election" "$(lease_rules sluice-team-a)" \
    role/sluice-team-a-leader-election -n sluice-team-a-system

  local kc=$work/sluice.kubeconfig
  token_kubeconfig "$NS" sluice "$kc"
  expect_watch_access "$kc" -A
  expect_watch_access "$kc" -n team-a
  expect_no_extra_access "$kc" -A
  expect_no_extra_access "$kc" -n "$NS"
  expect_cluster_scope_denied "$kc"
  expect_lease_access "$kc" "$NS" sluice

  local kc_ns=$work/sluice-team-a.kubeconfig
  token_kubeconfig sluice-team-a-system sluice-team-a "$kc_ns"
  expect_watch_access "$kc_ns" -n team-a
  expect_no_extra_access "$kc_ns" -n team-a
  expect_no_extra_access "$kc_ns" -A
  expect_cluster_scope_denied "$kc_ns"
  expect_lease_access "$kc_ns" sluice-team-a-system sluice-team-a
  # Nothing outside the watched namespace: not the pools, not the Secrets, not even its own
  # namespace's (its Role there is the Lease one).
  local other v
  for other in default kube-system sluice-team-a-system; do
    for v in get list watch; do
      can "$kc_ns" no "$v" secrets -n "$other"
      can "$kc_ns" no "$v" backendpools.sluice.dev -n "$other"
    done
    can "$kc_ns" no list endpointslices.discovery.k8s.io -n "$other"
    can "$kc_ns" no patch backendpools.sluice.dev --subresource=status -n "$other"
  done
  for v in list watch; do
    can "$kc_ns" no "$v" secrets -A
    can "$kc_ns" no "$v" backendpools.sluice.dev -A
    can "$kc_ns" no "$v" services -A
  done

  # -- Pod Security: restricted ----------------------------------------------------------------
  kubectl create namespace psa-restricted >/dev/null
  kubectl label namespace psa-restricted \
    pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest \
    pod-security.kubernetes.io/warn=restricted pod-security.kubernetes.io/warn-version=latest \
    pod-security.kubernetes.io/audit=restricted pod-security.kubernetes.io/audit-version=latest >/dev/null
  local values name
  for values in "" ci/all-features-values.yaml; do
    name=psa${values:+-all}
    local args=()
    [[ -z $values ]] || args=(-f "$CHART/$values")
    helm template "$name" "$CHART" -n psa-restricted "${args[@]}" -s templates/deployment.yaml >"$work/$name-deploy.yaml"
    if kubectl apply -f "$work/$name-deploy.yaml" >/dev/null 2>"$work/err"; then
      no_warnings "Deployment (${values:-default values}) in a namespace enforcing and warning restricted" "$work/err"
    else
      bad "Deployment (${values:-default values}) refused: $(cat "$work/err")"
    fi
    # Enforcement applies to Pods, not Deployments: create one from the template as well.
    kubectl create --dry-run=client -o json -f "$work/$name-deploy.yaml" |
      jq --arg n "$name-pod" '{apiVersion: "v1", kind: "Pod", metadata: {name: $n, labels: .spec.template.metadata.labels}, spec: .spec.template.spec}' \
        >"$work/$name-pod.json"
    if kubectl create -n psa-restricted -f "$work/$name-pod.json" >/dev/null 2>"$work/err"; then
      ok "Pod from the Deployment template (${values:-default values}) admitted under enforce=restricted"
      no_warnings "Pod (${values:-default values}) under restricted" "$work/err"
    else
      bad "Pod from the Deployment template (${values:-default values}) refused: $(cat "$work/err")"
    fi
  done
  # The detector itself: a container that may escalate must be warned about and refused.
  jq '.metadata.name = "psa-control" | .spec.containers[0].securityContext.allowPrivilegeEscalation = true' \
    "$work/psa-pod.json" >"$work/control.json"
  if kubectl create -n psa-restricted -f "$work/control.json" >/dev/null 2>"$work/err"; then
    bad "control: a Pod with allowPrivilegeEscalation=true was admitted under restricted"
  elif grep -q 'violates PodSecurity "restricted:latest"' "$work/err"; then
    ok "control: allowPrivilegeEscalation=true is refused (Pod Security admission is on)"
  else
    bad "control Pod refused for another reason: $(cat "$work/err")"
  fi
  sed 's/allowPrivilegeEscalation: false/allowPrivilegeEscalation: true/; s/^  name: psa-sluice$/  name: psa-control/' \
    "$work/psa-deploy.yaml" >"$work/control-deploy.yaml"
  kubectl apply -f "$work/control-deploy.yaml" >/dev/null 2>"$work/err" || true
  grep -q 'would violate PodSecurity' "$work/err" &&
    ok "control: a Deployment with allowPrivilegeEscalation=true draws a warning" ||
    bad "control: no Pod Security warning for allowPrivilegeEscalation=true: $(cat "$work/err")"

  run_controller_checks "$kc" "$kc_ns"
  end_section "the API-server checks"
}

# ---------------------------------------------------------------------------------------------
# Hook: the real controller with the chart's token (only when SLUICE_BIN is given)
# ---------------------------------------------------------------------------------------------

# start_controller LOG KUBECONFIG ARGS...: `sluice controller` in the background, as the chart
# runs it but out of cluster; sets controller_pid and admin_port.
start_controller() {
  local logf=$1 kc=$2
  shift 2
  # A port nothing listens on (the network namespace is private, so nothing else races for it).
  admin_port=19090
  while (: <"/dev/tcp/127.0.0.1/$admin_port") 2>/dev/null; do admin_port=$((admin_port + 1)); done
  KUBECONFIG=$kc "$SLUICE_BIN" controller --leader-elect --admin-listen "127.0.0.1:$admin_port" \
    --bind 198.18.0.8 --log-format json "$@" >"$logf" 2>&1 &
  controller_pid=$!
}

stop_controller() {
  local status=0
  kill -TERM "$controller_pid" 2>/dev/null || true
  local deadline=$((SECONDS + 60))
  while kill -0 "$controller_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$controller_pid" 2>/dev/null; then
    kill -KILL "$controller_pid" 2>/dev/null || true
    bad "$1: the controller did not exit within 60 s of SIGTERM"
  fi
  wait "$controller_pid" || status=$?
  controller_pid=
  ((status == 0)) && ok "$1: the controller exited 0 on SIGTERM" || bad "$1: the controller exited $status on SIGTERM"
}

pool_synced() { # NAMESPACE NAME: status written for the current generation, with a Ready condition
  local got
  got=$(kubectl get backendpool "$2" -n "$1" -o json) || return 1
  jq -e '.status.observedGeneration == .metadata.generation
         and ([.status.conditions[]? | select(.type == "Ready")] | length == 1)' <<<"$got" >/dev/null
}

lease_held() { # NAMESPACE NAME
  [[ -n $(kubectl get lease "$2" -n "$1" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null) ]]
}

readyz_ok() { curl -fsS --max-time 2 "http://127.0.0.1:$admin_port/readyz" >/dev/null; }

# apply_workload NAMESPACE: a Service, its EndpointSlice, a TLS Secret and two pools (plain and
# TLS) that touch every kind of object the controller reads.
apply_workload() {
  local ns=$1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=shop.example -addext subjectAltName=DNS:shop.example \
    -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
  kubectl create secret tls web-tls -n "$ns" --cert "$work/tls.crt" --key "$work/tls.key" >/dev/null
  kubectl apply -n "$ns" -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  labels: {kubernetes.io/service-name: web, endpointslice.kubernetes.io/managed-by: e2e.sluice.dev}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: ["198.18.0.7"], conditions: {ready: true}}]
---
apiVersion: sluice.dev/v1alpha1
kind: BackendPool
metadata: {name: web}
spec:
  protocol: HTTP
  listener: {port: 8080, pathPrefix: /}
  service: {name: web, port: 80}
---
apiVersion: sluice.dev/v1alpha1
kind: BackendPool
metadata: {name: web-tls}
spec:
  protocol: HTTP
  listener: {port: 8443, hosts: [shop.example], tls: {secretName: web-tls}}
  service: {name: web, port: 80}
EOF
}

# controller_case WHAT KUBECONFIG POOL_NAMESPACE LEASE_NAMESPACE LEASE ARGS...
controller_case() {
  local what=$1 kc=$2 pool_ns=$3 lease_ns=$4 lease=$5
  shift 5
  local logf=$work/controller-$lease.log
  apply_workload "$pool_ns"
  start_controller "$logf" "$kc" --leader-namespace "$lease_ns" --controller-name "$lease" "$@"
  wait_until 60 "$what: /readyz" readyz_ok && ok "$what: /readyz answers 200"
  wait_until 60 "$what: Lease $lease_ns/$lease held" lease_held "$lease_ns" "$lease" &&
    ok "$what: leader Lease $lease_ns/$lease held by $(kubectl get lease "$lease" -n "$lease_ns" -o jsonpath='{.spec.holderIdentity}')"
  local pool
  for pool in web web-tls; do
    wait_until 60 "$what: status of $pool_ns/$pool" pool_synced "$pool_ns" "$pool" &&
      ok "$what: status of $pool_ns/$pool written ($(kubectl get backendpool "$pool" -n "$pool_ns" \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}'))"
  done
  stop_controller "$what"
  if grep -q -e '"level":"WARN"' -e '"level":"ERROR"' "$logf"; then
    log "$what: warnings and errors the controller logged (not failures by themselves):"
    grep -e '"level":"WARN"' -e '"level":"ERROR"' "$logf" | head -20 >&2
  fi
  if grep -qi 'forbidden' "$logf"; then
    bad "$what: 'forbidden' in the controller log (RBAC too narrow):"$'\n'"$(grep -i forbidden "$logf" | head -20)"
  else
    ok "$what: no 'forbidden' in $(wc -l <"$logf") log lines"
  fi
}

run_controller_checks() {
  if [[ -z ${SLUICE_BIN-} ]]; then
    log "SLUICE_BIN not set: skipping the controller run with the chart's token"
    return 0
  fi
  [[ -x $SLUICE_BIN ]] || die "SLUICE_BIN=$SLUICE_BIN is not executable"
  kubectl create namespace apps >/dev/null
  controller_case "controller (cluster-wide, chart token)" "$1" apps "$NS" sluice
  controller_case "controller (watchNamespace=team-a, chart token)" "$2" team-a sluice-team-a-system sluice-team-a \
    --namespace team-a
}

# ---------------------------------------------------------------------------------------------

case $mode in
  static) static_checks ;;
  cluster)
    render_variants
    cluster_checks
    ;;
  all)
    static_checks
    log "$passed offline checks passed"
    # The API-server checks run inside tests/packaging.rs, which owns the control plane. Build
    # it here (this may fetch crates); run it offline in the private network namespace.
    log "building tests/packaging.rs"
    cargo test --locked --test packaging --no-run
    log "running tests/packaging.rs (etcd + kube-apiserver) in a private network namespace"
    hack/in-netns.sh cargo test --offline --locked --test packaging -- --include-ignored --nocapture
    ;;
esac
case $mode in
  all) log "all packaging checks passed" ;;
  *) log "$passed checks passed ($mode)" ;;
esac
