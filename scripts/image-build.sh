#!/usr/bin/env bash
# `make image`: builds docker.io/kairn/kairn:<chart version> (the reference the chart renders)
# from the Dockerfile with podman, on the base `make setup` chose (.tools/image/base: the real
# python image when a registry serves it, the Debian stand-in otherwise), then writes the
# image's SBOM (scripts/image-sbom.sh).
#
# Skipped when the image exists with the same inputs: the build context (.dockerignore lets in
# only what the Dockerfile copies), the Dockerfile and the base image's id, hashed into the
# image's label kairn.build.inputs. Layers are cached by podman, so a change of agents/ alone
# rebuilds only the wheel layer and the final copy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
podman=.tools/bin/podman
state=.tools/image
if [ ! -x "$podman" ] || [ ! -f "$state/base" ]; then
  echo "image: run make setup first" >&2
  exit 1
fi

version=$(sed -n 's/^version: *//p' chart/Chart.yaml)
image=docker.io/kairn/kairn:$version
tag=$(sed -n "s/^FROM \${BASE_REPOSITORY}:\([^ ]*\).*/\1/p" Dockerfile | head -n 1)
repository=$(cat "$state/base")
base=$repository:$tag
if ! $podman image exists "$base"; then  # a new tag in the Dockerfile: its base first
  scripts/setup-image.sh
  repository=$(cat "$state/base")
  base=$repository:$tag
fi
sbom=$state/kairn-$version.cdx.json

inputs() {  # every file of the build context, then the Dockerfile, .dockerignore and the base
  find requirements.txt constraints.txt pyproject.toml tools/jmx/pom.xml agents -type f \
    ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  sha256sum Dockerfile .dockerignore
  echo "base $base $($podman image inspect --format '{{.Id}}' "$base")"
}
want=$(inputs | sha256sum | cut -d' ' -f1)
have=$($podman image inspect --format '{{index .Labels "kairn.build.inputs"}}' "$image" \
  2>/dev/null || true)
if [ "$have" = "$want" ] && [ -s "$sbom" ]; then
  echo "image: $image is up to date"
  exit 0
fi

if [ "$have" != "$want" ]; then
  echo "image: building $image on $base"
  start=$SECONDS
  # --format docker: the OCI format has no SHELL instruction and podman would ignore the
  # Dockerfile's (pipefail). The build's network is the host's: no bridge is needed to reach
  # Debian, PyPI and Maven.
  $podman build --quiet --format docker --network host --build-arg "BASE_REPOSITORY=$repository" \
    --label "kairn.build.inputs=$want" --tag "$image" . >/dev/null
  echo "image: built in $((SECONDS - start))s"
fi
scripts/image-sbom.sh "$image" "$sbom"
size=$($podman image inspect --format '{{.Size}}' "$image")
echo "image: $image, $((size / 1000000)) MB, SBOM $sbom"
