#!/usr/bin/env bash
# Builds the Go programs that are Kubernetes clients into .tools/bin from the Go module proxy,
# pinned by the wrapper module tools/go/clients: helm 3 and 4 (helm template, lint and the
# values matrix with both), helm-unittest, and kwok (the local control plane's fake kubelets,
# run on their own, without kwokctl). One module for the four, so the packages they share are
# compiled once. It also writes kwok's default node and pod stages to
# .tools/share/kwok/stages.yaml. A binary already at the pinned version is kept, so a second
# run is quick. (promtool comes from Debian: scripts/setup-promtool.sh.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
share="$root/.tools/share/kwok"
mod="$root/tools/go/clients"
mkdir -p "$bin" "$share"

# also in tools/go/clients/go.mod (checked below)
HELM3_VERSION=v3.22.0
HELM4_VERSION=v4.3.1
HELM_UNITTEST_VERSION=v1.1.2
KWOK_VERSION=v0.8.0

# The same flags as scripts/setup-kube.sh, so both share the compiled standard library in the
# build cache; no symbol tables or DWARF, which the tools never need and which slow the links.
export GOFLAGS="${GOFLAGS:-} -buildvcs=false -trimpath"

# stamp NAME VERSION: true when .tools/bin/NAME was built at VERSION
have() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" > "$bin/.$1.version"; }

if ! { have helm "$HELM3_VERSION" && have helm4 "$HELM4_VERSION" \
       && have helm-unittest "$HELM_UNITTEST_VERSION" && have kwok "$KWOK_VERSION"; }; then
  cd "$mod"
  for pin in "helm.sh/helm/v3 $HELM3_VERSION" "helm.sh/helm/v4 $HELM4_VERSION" \
             "github.com/helm-unittest/helm-unittest $HELM_UNITTEST_VERSION" \
             "sigs.k8s.io/kwok $KWOK_VERSION"; do
    read -r path version <<< "$pin"
    [ "$(go list -m -f '{{.Version}}' "$path")" = "$version" ] \
      || { echo "setup-go-tools: tools/go/clients/go.mod does not pin $path at $version" >&2; exit 1; }
  done

  echo "building helm $HELM3_VERSION, helm4 $HELM4_VERSION, helm-unittest $HELM_UNITTEST_VERSION and kwok $KWOK_VERSION"
  start=$SECONDS
  # Without these the helm binaries report versions without a patch number. helm-unittest
  # embeds helm 3, whose version it reports too.
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION"
  ldflags+=" -X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION"
  out="$bin/.clients.tmp"
  rm -rf "$out"; mkdir -p "$out"
  # two builds, as both helm commands are named helm; the second finds the shared packages built
  nice -n 10 go build -ldflags "$ldflags" -o "$out/" helm.sh/helm/v3/cmd/helm \
    github.com/helm-unittest/helm-unittest/cmd/helm-unittest sigs.k8s.io/kwok/cmd/kwok
  nice -n 10 go build -ldflags "$ldflags" -o "$out/helm4" helm.sh/helm/v4/cmd/helm
  mv "$out/helm" "$bin/helm"; mark helm "$HELM3_VERSION"
  mv "$out/helm4" "$bin/helm4"; mark helm4 "$HELM4_VERSION"
  mv "$out/helm-unittest" "$bin/helm-unittest"; mark helm-unittest "$HELM_UNITTEST_VERSION"
  mv "$out/kwok" "$bin/kwok"; mark kwok "$KWOK_VERSION"
  rmdir "$out"
  echo "built helm, helm4, helm-unittest and kwok in $((SECONDS - start))s"
fi

# kwok run on its own (not through kwokctl) needs its stages in a config file: the same
# defaults kwokctl uses (node initialize + heartbeat with lease, pod ready/complete/delete).
if [ "$(cat "$share/.version" 2>/dev/null)" != "$KWOK_VERSION" ]; then
  src=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  {
    echo "# kwok $KWOK_VERSION default stages (from sigs.k8s.io/kwok kustomize/stage)"
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"
      cat "$src/kustomize/stage/$f"
    done
  } > "$share/stages.yaml.tmp"
  mv "$share/stages.yaml.tmp" "$share/stages.yaml"
  echo "$KWOK_VERSION" > "$share/.version"
fi
