#!/usr/bin/env bash
# Builds a local Kubernetes control plane into .tools/bin from the Go module proxy, pinned:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl. (kwok, the fake
# kubelets, is built with the other Kubernetes clients by scripts/setup-go-tools.sh.)
#
# A binary already at its pinned version is kept, so a second run is quick. Builds run one at
# a time, niced, with at most KUBE_BUILD_JOBS (default 2) compile jobs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
mods="$root/tools/go/kube"
mkdir -p "$bin"

KUBE_VERSION=v1.34.4    # also in tools/go/kube/kubernetes/go.mod (staging modules at v0.34.4)
ETCD_VERSION=v3.6.16    # also in tools/go/kube/etcd/go.mod

jobs=${KUBE_BUILD_JOBS:-2}
# (-trimpath as in scripts/setup-go-tools.sh: both share the compiled standard library)
export GOFLAGS="${GOFLAGS:-} -buildvcs=false -trimpath"

have() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" > "$bin/.$1.version"; }

# build NAME VERSION MODULE_DIR PACKAGE [LDFLAGS]: go build into .tools/bin/NAME, timed.
build() {
  local name=$1 version=$2 dir=$3 pkg=$4 ldflags=${5:-}
  have "$name" "$version" && return 0
  echo "building $name $version"
  local start=$SECONDS tmp="$bin/.$name.tmp"
  (cd "$dir" && nice -n 10 go build -p "$jobs" -ldflags "-s -w $ldflags" -o "$tmp" "$pkg")
  mv "$tmp" "$bin/$name"
  mark "$name" "$version"
  echo "built $name $version in $((SECONDS - start))s"
}

# Version stamps the way Kubernetes' own build sets them, so the server, kubectl and Helm see
# v1.34.x and not v0.0.0-master.
kube_ldflags() {
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local p out=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    out+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    out+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$out"
}

build etcd "$ETCD_VERSION" "$mods/etcd" go.etcd.io/etcd/server/v3

# The Kubernetes commands in one `go build`: the packages they share (most of them) are
# compiled once, and one command's link overlaps the others' compiles.
kube_cmds=()
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  have "$cmd" "$KUBE_VERSION" || kube_cmds+=("$cmd")
done
if [ ${#kube_cmds[@]} -gt 0 ]; then
  echo "building ${kube_cmds[*]} $KUBE_VERSION"
  start=$SECONDS out="$bin/.kube.tmp"
  rm -rf "$out"; mkdir -p "$out"
  (cd "$mods/kubernetes" && nice -n 10 go build -p "$jobs" -ldflags "-s -w $(kube_ldflags)" \
    -o "$out/" "${kube_cmds[@]/#/k8s.io/kubernetes/cmd/}")
  for cmd in "${kube_cmds[@]}"; do
    mv "$out/$cmd" "$bin/$cmd"
    mark "$cmd" "$KUBE_VERSION"
  done
  rmdir "$out"
  echo "built ${kube_cmds[*]} $KUBE_VERSION in $((SECONDS - start))s"
fi
