#!/usr/bin/env bash
# Resolves the Prometheus JMX exporter java agent (tools/jmx/pom.xml) with Maven into .tools/jmx,
# named jmx_prometheus_javaagent.jar as in the kairn image's /opt/kairn/jmx (the harness maps that
# image path to this folder).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.tools/jmx"
jar="$dir/jmx_prometheus_javaagent.jar"
stamp="$dir/.pom.sha256"
want=$(sha256sum "$root/tools/jmx/pom.xml" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -f "$jar" ]; then
  echo "resolving the JMX exporter java agent with Maven"
  rm -rf "$dir"; mkdir -p "$dir"
  (cd "$root/tools/jmx" && mvn -q -B dependency:copy-dependencies \
    -DoutputDirectory="$dir" -DincludeScope=runtime -Dmdep.stripVersion=true)
  [ -f "$jar" ] || { echo "setup-jmx: $jar was not resolved" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
