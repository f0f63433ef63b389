#!/usr/bin/env bash
# Run CMD... inside a private network namespace whose only interface is its own loopback,
# with the test addresses 198.18.0.1-198.18.0.8 (RFC 2544 benchmarking range) as /32s on it.
# The host's namespace is never touched, and nothing can leave the machine from inside.
#
# Usage: hack/in-netns.sh CMD [ARGS...]
#
# A PID namespace too: when CMD exits, the kernel kills every process it left behind
# (etcd, kube-apiserver, backends), and --kill-child does the same if this script is killed.
# Needs root (as in CI) or unprivileged user namespaces (then it maps the caller to root).
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi

userns=()
[[ $(id -u) -eq 0 ]] || userns=(--map-root-user)

# sh stays PID 1 of the new PID namespace (no exec), so the namespace, and everything in
# it, ends when CMD does; its exit status is CMD's.
exec unshare "${userns[@]}" --net --pid --fork --kill-child --mount-proc -- sh -c '
  set -e
  ip link set lo up
  for i in 1 2 3 4 5 6 7 8; do ip addr add "198.18.0.$i/32" dev lo; done
  "$@"
' in-netns "$@"
