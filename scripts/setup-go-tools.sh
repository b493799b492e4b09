#!/usr/bin/env bash
# Builds the Go tools the chart tier uses into .tools/bin from the Go module proxy, pinned by
# the wrapper module tools/go/helm: helm 3 and 4 (helm template, lint and the values matrix
# with both) and helm-unittest. One module for the three, so the packages they share are
# compiled once. A binary already at the pinned version is kept, so a second run is quick.
# (promtool comes from Debian: scripts/setup-promtool.sh.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
mod="$root/tools/go/helm"
mkdir -p "$bin"

# also in tools/go/helm/go.mod (checked below)
HELM3_VERSION=v3.22.0
HELM4_VERSION=v4.3.1
HELM_UNITTEST_VERSION=v1.1.2

# The same flags as scripts/setup-kube.sh, so both share the compiled standard library in the
# build cache; no symbol tables or DWARF, which the tools never need and which slow the links.
export GOFLAGS="${GOFLAGS:-} -buildvcs=false -trimpath"

# stamp NAME VERSION: true when .tools/bin/NAME was built at VERSION
have() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" > "$bin/.$1.version"; }

if have helm "$HELM3_VERSION" && have helm4 "$HELM4_VERSION" \
  && have helm-unittest "$HELM_UNITTEST_VERSION"; then
  exit 0
fi

cd "$mod"
for pin in "helm.sh/helm/v3 $HELM3_VERSION" "helm.sh/helm/v4 $HELM4_VERSION" \
           "github.com/helm-unittest/helm-unittest $HELM_UNITTEST_VERSION"; do
  read -r path version <<< "$pin"
  [ "$(go list -m -f '{{.Version}}' "$path")" = "$version" ] \
    || { echo "setup-go-tools: tools/go/helm/go.mod does not pin $path at $version" >&2; exit 1; }
done

echo "building helm $HELM3_VERSION, helm4 $HELM4_VERSION and helm-unittest $HELM_UNITTEST_VERSION"
start=$SECONDS
# Without these the binaries report versions without a patch number. helm-unittest embeds
# helm 3, whose version it reports too.
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION"
ldflags+=" -X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION"
out="$bin/.helm.tmp"
rm -rf "$out"; mkdir -p "$out"
# two builds, as both helm commands are named helm; the second finds the shared packages built
go build -ldflags "$ldflags" -o "$out/" helm.sh/helm/v3/cmd/helm \
  github.com/helm-unittest/helm-unittest/cmd/helm-unittest
go build -ldflags "$ldflags" -o "$out/helm4" helm.sh/helm/v4/cmd/helm
mv "$out/helm" "$bin/helm"; mark helm "$HELM3_VERSION"
mv "$out/helm4" "$bin/helm4"; mark helm4 "$HELM4_VERSION"
mv "$out/helm-unittest" "$bin/helm-unittest"; mark helm-unittest "$HELM_UNITTEST_VERSION"
rmdir "$out"
echo "built helm, helm4 and helm-unittest in $((SECONDS - start))s"
