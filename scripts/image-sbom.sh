#!/usr/bin/env bash
# image-sbom.sh IMAGE FILE: the image's software bill of materials as CycloneDX 1.6 JSON.
# Python packages: cyclonedx-py (installed by scripts/setup-image.sh) run inside the image on
# its virtualenv /opt/kairn, with kairn-agents (pyproject.toml) as the root component. Debian
# packages: dpkg's own list from the image, added as pkg:deb components; the JMX exporter
# java agent as its Maven coordinates (tools/jmx/pom.xml). Nothing leaves the machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
image=$1 out=$2
podman=.tools/bin/podman
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { $podman run --rm --network none --user 10001:10001 --read-only "$@"; }
# the tool on sys.path of its own interpreter only: PYTHONPATH would leak into the virtualenv
# it inspects and list the tool's packages as the image's
run -v "$root/.tools/sbom:/sbom:ro" -v "$root/pyproject.toml:/src/pyproject.toml:ro" "$image" \
  /usr/bin/python3 -c 'import runpy, sys
sys.path.insert(0, "/sbom")
sys.argv[0] = "cyclonedx-py"
runpy.run_module("cyclonedx_py", run_name="__main__")' \
  environment --output-reproducible --pyproject /src/pyproject.toml /opt/kairn/bin/python \
  > "$tmp/python.json"
# shellcheck disable=SC2016  # dpkg-query's own ${field} syntax
run "$image" dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\t${source:Package}\n' \
  > "$tmp/debian.tsv"
jmx_version=$(sed -n '/<artifactId>jmx_prometheus_javaagent</{n;s/.*<version>\(.*\)<\/version>.*/\1/p}' \
  tools/jmx/pom.xml)

python3 - "$tmp/python.json" "$tmp/debian.tsv" "$jmx_version" "$image" > "$tmp/bom.json" <<'PY'
import json
import sys

bom = json.load(open(sys.argv[1]))
components = bom["components"]
for line in open(sys.argv[2]):
    name, version, arch, source = line.rstrip("\n").split("\t")
    purl = f"pkg:deb/debian/{name}@{version}?arch={arch}&distro=debian-12"
    component = {"type": "library", "bom-ref": purl, "name": name, "version": version,
                 "purl": purl}
    if source and source != name:
        component["properties"] = [{"name": "debian:source", "value": source}]
    components.append(component)
jmx = sys.argv[3]
purl = f"pkg:maven/io.prometheus.jmx/jmx_prometheus_javaagent@{jmx}"
components.append({"type": "library", "bom-ref": purl, "group": "io.prometheus.jmx",
                   "name": "jmx_prometheus_javaagent", "version": jmx, "purl": purl,
                   "properties": [{"name": "kairn:path",
                                   "value": "/opt/kairn/jmx/jmx_prometheus_javaagent.jar"}]})
bom["metadata"]["properties"].append({"name": "kairn:image", "value": sys.argv[4]})
json.dump(bom, sys.stdout, indent=2)
PY
mv "$tmp/bom.json" "$out"
echo "sbom: $(grep -c '"purl"' "$out") components in $out"
