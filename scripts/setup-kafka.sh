#!/usr/bin/env bash
# Resolves Kafka 3.9 and every runtime jar (ZooKeeper included) with Maven into .tools/kafka/libs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
libs="$root/.tools/kafka/libs"
stamp="$root/.tools/kafka/.pom.sha256"
want=$(sha256sum "$root/tools/kafka/pom.xml" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -d "$libs" ]; then
  echo "resolving Kafka jars with Maven"
  rm -rf "$libs"; mkdir -p "$libs"
  (cd "$root/tools/kafka" && mvn -q -B dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime)
  ls "$libs"/kafka_2.13-3.9.*.jar "$libs"/zookeeper-3.*.jar >/dev/null
  echo "$want" > "$stamp"
fi
