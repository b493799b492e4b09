#!/usr/bin/env bash
# Builds the Go tools kairn's tests use into .tools/bin, from the Go module proxy, pinned.
# A binary already at the pinned version is kept, so a second run is quick.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
mkdir -p "$bin"

HELM3_VERSION=v3.22.0
HELM4_VERSION=v4.3.1
KUBECONFORM_VERSION=v0.7.0
HELM_UNITTEST_VERSION=v1.1.2   # also in tools/go/helm-unittest/go.mod
# promtool checks and unit-tests the chart's alert rules; v0.316.0 is the module version of Prometheus 3.16.0
PROMTOOL_VERSION=v0.316.0

# stamp NAME VERSION: true when .tools/bin/NAME was built at VERSION
have() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" > "$bin/.$1.version"; }

if ! have helm "$HELM3_VERSION"; then
  echo "building helm $HELM3_VERSION"
  GOBIN="$bin" go install -ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM3_VERSION"
  mark helm "$HELM3_VERSION"
fi

if ! have helm4 "$HELM4_VERSION"; then
  echo "building helm4 $HELM4_VERSION"
  tmp=$(mktemp -d)
  GOBIN="$tmp" go install -ldflags "-X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM4_VERSION"
  mv "$tmp/helm" "$bin/helm4"; rmdir "$tmp"
  mark helm4 "$HELM4_VERSION"
fi

if ! have kubeconform "$KUBECONFORM_VERSION"; then
  echo "building kubeconform $KUBECONFORM_VERSION"
  GOBIN="$bin" go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  mark kubeconform "$KUBECONFORM_VERSION"
fi

if ! have helm-unittest "$HELM_UNITTEST_VERSION"; then
  echo "building helm-unittest $HELM_UNITTEST_VERSION"
  (cd "$root/tools/go/helm-unittest" && GOFLAGS=-mod=mod go build -o "$bin/helm-unittest" \
    github.com/helm-unittest/helm-unittest/cmd/helm-unittest)
  mark helm-unittest "$HELM_UNITTEST_VERSION"
fi

if ! have promtool "$PROMTOOL_VERSION"; then
  echo "building promtool $PROMTOOL_VERSION"
  GOBIN="$bin" go install "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
  mark promtool "$PROMTOOL_VERSION"
fi
