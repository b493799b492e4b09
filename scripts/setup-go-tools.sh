#!/usr/bin/env bash
# Builds the Go tools the chart tier uses into .tools/bin from the Go module proxy, pinned:
# helm 3 and 4 (helm template, lint and the values matrix with both) and helm-unittest.
# A binary already at the pinned version is kept, so a second run is quick.
# (promtool comes from Debian: scripts/setup-promtool.sh.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
mkdir -p "$bin"

HELM3_VERSION=v3.22.0
HELM4_VERSION=v4.3.1
HELM_UNITTEST_VERSION=v1.1.2   # also in tools/go/helm-unittest/go.mod

# The same flags as scripts/setup-kube.sh, so both share the compiled standard library in the
# build cache; no symbol tables or DWARF, which the tools never need and which slow the links.
export GOFLAGS="${GOFLAGS:-} -buildvcs=false -trimpath"

# stamp NAME VERSION: true when .tools/bin/NAME was built at VERSION
have() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" > "$bin/.$1.version"; }

if ! have helm "$HELM3_VERSION"; then
  echo "building helm $HELM3_VERSION"
  start=$SECONDS
  GOBIN="$bin" go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM3_VERSION"
  mark helm "$HELM3_VERSION"
  echo "built helm $HELM3_VERSION in $((SECONDS - start))s"
fi

if ! have helm4 "$HELM4_VERSION"; then
  echo "building helm4 $HELM4_VERSION"
  start=$SECONDS
  tmp=$(mktemp -d)
  GOBIN="$tmp" go install -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM4_VERSION"
  mv "$tmp/helm" "$bin/helm4"; rmdir "$tmp"
  mark helm4 "$HELM4_VERSION"
  echo "built helm4 $HELM4_VERSION in $((SECONDS - start))s"
fi

if ! have helm-unittest "$HELM_UNITTEST_VERSION"; then
  echo "building helm-unittest $HELM_UNITTEST_VERSION"
  start=$SECONDS
  (cd "$root/tools/go/helm-unittest" && GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "-s -w" \
    -o "$bin/helm-unittest" github.com/helm-unittest/helm-unittest/cmd/helm-unittest)
  mark helm-unittest "$HELM_UNITTEST_VERSION"
  echo "built helm-unittest $HELM_UNITTEST_VERSION in $((SECONDS - start))s"
fi
