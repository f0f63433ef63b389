#!/usr/bin/env bash
# Build the Kubernetes control-plane binaries the end-to-end tests run: kube-apiserver,
# kubectl, kube-controller-manager, kube-scheduler, etcd and helm, from their Go modules (no containers, no download sites: only
# the Go module proxy). Each tool is built once per version in its own throw-away wrapper
# module and cached outside the repository, so a second run only checks the cache.
#
# Usage:
#   hack/kube-bins.sh              build what is missing; last stdout line: KUBE_BINS=DIR
#   hack/kube-bins.sh --print-dir  the same, but stdout is only DIR
#                                  (SLUICE_KUBE_BINS="$(hack/kube-bins.sh --print-dir)"; then export it:
#                                  `export V="$(cmd)"` would hide a failed build from set -e)
#
# DIR holds kube-apiserver, kubectl, kube-controller-manager, kube-scheduler, etcd and helm (symlinks into the per-tool cache
# directories). Progress goes to stderr. Nothing built lands in the repository.
#
# Environment (all optional):
#   KUBE_VERSION (v1.36.3)  k8s.io/kubernetes; staging modules are replaced by v0.MINOR.PATCH
#   ETCD_VERSION (v3.6.16)  go.etcd.io/etcd/server/v3
#   HELM_VERSION (v3.22.0)  helm.sh/helm/vMAJOR (v3 or v4)
#   SLUICE_KUBE_BINS_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/sluice-kube-bins)
#
# Measured on 2 cores / 24 GiB, Go 1.26.8, empty Go caches (other builds sharing the CPU):
#   kube-apiserver + kubectl 323 s (incl. module downloads), etcd 33 s, helm 121 s: 8 min in
#   all; largest process 1.8 GiB (the linker), all Go processes together about 2 GiB.
#   kube-controller-manager + kube-scheduler added later: 149 s wall, peak RSS 1.9 GiB, with
#   the module cache and GOCACHE warm from the kube-apiserver build (they share most
#   packages), 92 MB + 70 MB. A cold build of all four k8s.io/kubernetes tools at once was not
#   measured: with an empty GOCACHE it ran out of disk on the shared machine after 20 min.
#   Left behind: this cache 243 MB (+162 MB), GOMODCACHE about 1.2 GB (250 MB downloaded), GOCACHE
#   about 3.1 GB. A fully cached run takes 0.1 s and needs neither go nor the network.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
CACHE=${SLUICE_KUBE_BINS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-kube-bins}

print_dir_only=false
case "${1-}" in
  "") ;;
  --print-dir) print_dir_only=true ;;
  -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--print-dir]" >&2; exit 2 ;;
esac

log() { echo "kube-bins: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Checked only before a build: a fully cached run needs neither, nor any network.
need_tools() {
  command -v go >/dev/null || die "go not found on PATH"
  command -v jq >/dev/null || die "jq not found on PATH (apt-get install jq)"
}

[[ $KUBE_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "KUBE_VERSION must look like v1.36.3, got $KUBE_VERSION"
kube_minor=${BASH_REMATCH[1]}
staging_version=v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}
[[ $HELM_VERSION =~ ^v([34])\.[0-9]+\.[0-9]+$ ]] || die "HELM_VERSION must be v3.x.y or v4.x.y, got $HELM_VERSION"
helm_major=${BASH_REMATCH[1]}
helm_module=helm.sh/helm/v$helm_major

# Reproducible, cache-friendly builds; module downloads go to the default GOPATH/GOCACHE,
# outside the repository. -mod=mod lets the wrapper modules resolve their requirements.
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
build_flags=(-p 2 -trimpath)

mkdir -p "$CACHE"
# Two overlapping runs (say a developer and a test) must not build into each other.
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null; then
  flock -w 3600 9 || die "timed out waiting for $CACHE/.lock"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-kube-bins.XXXXXX")
trap 'rm -rf "$work"' EXIT

# cached TOOL VERSION RECIPE: true when CACHE/TOOL-VERSION/TOOL was built by this recipe.
# The recipe (module, flags) is stored beside the binary so a changed recipe rebuilds.
cached() {
  local dir=$CACHE/$1-$2
  [[ -x $dir/$1 && -f $dir/RECIPE && "$(cat "$dir/RECIPE")" == "$3" ]]
}

# install TOOL VERSION RECIPE BUILT_BINARY: move into the cache atomically.
install_bin() {
  local dir=$CACHE/$1-$2 tmp
  tmp=$(mktemp -d "$CACHE/.$1-$2.XXXXXX")
  chmod 755 "$tmp"
  mv "$4" "$tmp/$1"
  printf '%s' "$3" >"$tmp/RECIPE"
  go version >"$tmp/GO-VERSION"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  log "cached $dir/$1 ($(du -h "$dir/$1" | cut -f1))"
}

# timed LABEL CMD...: run CMD, report wall time and the peak RSS of its largest process.
timed() {
  local label=$1; shift
  local start=$SECONDS
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f "kube-bins: $label: %e s wall, peak RSS %M KiB (largest process)" "$@"
  else
    "$@"
    log "$label: $((SECONDS - start)) s wall"
  fi
}

# new_module DIR: an empty wrapper module.
new_module() {
  need_tools
  mkdir -p "$1"
  (cd "$1" && go mod init sluice.invalid/kube-bins/"$(basename "$1")" >/dev/null 2>&1)
}

# --- kube-apiserver, kubectl, kube-controller-manager, kube-scheduler (k8s.io/kubernetes) -------------------------------------------

kube_ldflags() {
  # What kubernetes' hack/lib/version.sh sets, so /version and `kubectl version` report the
  # real version (helm and kubectl's skew checks read it). buildDate is the module's
  # publication time, so the binaries are reproducible.
  local date=$1 flags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor"
    flags+=" -X $pkg.gitTreeState=archive -X $pkg.buildDate=$date"
  done
  printf '%s' "$flags"
}

build_kube() {
  local mod=$work/kube info date key ldflags tools=() t
  # The cache key leaves out buildDate, so a cached check needs no network at all.
  key=$(kube_ldflags MODULE-TIME)
  for t in kube-apiserver kubectl kube-controller-manager kube-scheduler; do
    if cached "$t" "$KUBE_VERSION" "k8s.io/kubernetes/cmd/$t@$KUBE_VERSION $key"; then
      log "$t $KUBE_VERSION: cached"
    else
      tools+=("$t")
    fi
  done
  ((${#tools[@]})) || return 0

  need_tools
  info=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION") || die "cannot download k8s.io/kubernetes@$KUBE_VERSION"
  local gomod
  gomod=$(jq -r .GoMod <<<"$info")
  date=$(jq -r '.Time // empty' "$(jq -r .Info <<<"$info")")
  ldflags=$(kube_ldflags "${date:-1970-01-01T00:00:00Z}")
  new_module "$mod"
  local edits=(-require="k8s.io/kubernetes@$KUBE_VERSION")
  # kubernetes requires each staging module (k8s.io/api, ...) at v0.0.0 and replaces it with
  # ./staging/src/k8s.io/NAME; the same code is published as k8s.io/NAME v0.MINOR.PATCH.
  # Replace only required ones: some replaced modules (sample-cli-plugin) are never published.
  local m
  while read -r m; do
    edits+=(-replace="$m=$m@$staging_version")
  done < <(go mod edit -json "$gomod" | jq -r '
      [.Require[].Path] as $req
      | .Replace[] | select(.New.Path | startswith("./")) | .Old.Path
      | select(. as $p | $req | index($p))')
  while read -r m; do
    edits+=(-godebug="$m")
  done < <(go mod edit -json "$gomod" | jq -r '(.GoDebug // [])[] | "\(.Key)=\(.Value)"')
  (cd "$mod" && go mod edit "${edits[@]}")
  log "building ${tools[*]} $KUBE_VERSION (staging modules at $staging_version)"
  local pkgs=()
  for t in "${tools[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$t"); done
  mkdir -p "$mod/out"
  (cd "$mod" && timed "${tools[*]} $KUBE_VERSION" \
    go build "${build_flags[@]}" -ldflags "$ldflags" -o out/ "${pkgs[@]}")
  for t in "${tools[@]}"; do
    install_bin "$t" "$KUBE_VERSION" "k8s.io/kubernetes/cmd/$t@$KUBE_VERSION $key" "$mod/out/$t"
  done
}

# --- etcd ------------------------------------------------------------------------------------

build_etcd() {
  local mod=$work/etcd ldflags="-s -w" recipe
  recipe="go.etcd.io/etcd/server/v3@$ETCD_VERSION $ldflags"
  if cached etcd "$ETCD_VERSION" "$recipe"; then log "etcd $ETCD_VERSION: cached"; return 0; fi
  # main is the root package of go.etcd.io/etcd/server/v3; `go install` refuses the module
  # because of its replace directives, a wrapper module ignores them.
  new_module "$mod"
  (cd "$mod" && go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION")
  log "building etcd $ETCD_VERSION"
  (cd "$mod" && timed "etcd $ETCD_VERSION" \
    go build "${build_flags[@]}" -ldflags "$ldflags" -o "$mod/etcd" go.etcd.io/etcd/server/v3)
  install_bin etcd "$ETCD_VERSION" "$recipe" "$mod/etcd"
}

# --- helm ------------------------------------------------------------------------------------

build_helm() {
  local mod=$work/helm ldflags recipe v=$helm_module
  ldflags="-s -w -X $v/internal/version.version=$HELM_VERSION -X $v/internal/version.gitTreeState=clean"
  if [[ $helm_major == 3 ]]; then
    # Without this pair helm v3's `helm template` (and lint) assume Kubernetes 1.20, which
    # breaks charts with a kubeVersion constraint; pin them to the server we test against.
    # (helm v4 derives it from its own client-go instead: v4.3.1 assumes 1.37, and only
    # `helm template --kube-version 1.36.3` changes that; built and checked once here.)
    ldflags+=" -X $v/pkg/chartutil.k8sVersionMajor=1 -X $v/pkg/chartutil.k8sVersionMinor=$kube_minor"
    ldflags+=" -X $v/pkg/lint/rules.k8sVersionMajor=1 -X $v/pkg/lint/rules.k8sVersionMinor=$kube_minor"
  fi
  recipe="$v/cmd/helm@$HELM_VERSION $ldflags"
  if cached helm "$HELM_VERSION" "$recipe"; then log "helm $HELM_VERSION: cached"; return 0; fi
  new_module "$mod"
  (cd "$mod" && go mod edit -require="$v@$HELM_VERSION")
  log "building helm $HELM_VERSION"
  (cd "$mod" && timed "helm $HELM_VERSION" \
    go build "${build_flags[@]}" -ldflags "$ldflags" -o "$mod/helm" "$v/cmd/helm")
  install_bin helm "$HELM_VERSION" "$recipe" "$mod/helm"
}

build_kube
build_etcd
build_helm

# One directory with all four, named by the version set, so tests take a single path.
bins=$CACHE/bin-kube$KUBE_VERSION-etcd$ETCD_VERSION-helm$HELM_VERSION
mkdir -p "$bins"
for pair in "kube-apiserver $KUBE_VERSION" "kubectl $KUBE_VERSION" \
  "kube-controller-manager $KUBE_VERSION" "kube-scheduler $KUBE_VERSION" "etcd $ETCD_VERSION" "helm $HELM_VERSION"; do
  read -r t v <<<"$pair"
  ln -sfn "../$t-$v/$t" "$bins/$t"
  [[ -x $bins/$t ]] || die "$bins/$t is not executable"
done

if $print_dir_only; then
  echo "$bins"
else
  echo "KUBE_BINS=$bins"
fi
