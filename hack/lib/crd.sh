# Sourced by hack/check-packaging.sh and hack/conformance.sh.
#
# wait_established KUBECTL CRD...: poll until every CRD is Established (60 s at most), asking
# with KUBECTL (a command or function). `kubectl wait --for=condition=Established` fails at once
# when it reads a CRD before the API server wrote any condition ("<nil> is of the type <nil>"),
# which tests/support/kube.rs saw happen.
wait_established() {
  local kubectl=$1 crd deadline=$((SECONDS + 60))
  shift
  for crd in "$@"; do
    until [[ $("$kubectl" get "$crd" -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}' 2>/dev/null) == True ]]; do
      ((SECONDS < deadline)) || return 1
      sleep 0.2
    done
  done
}
