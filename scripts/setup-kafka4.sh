#!/usr/bin/env bash
# Resolves Kafka 4 (KRaft mode) and every runtime jar with Maven into .tools/kafka4/libs, beside
# Kafka 3.9's .tools/kafka/libs: the two lines never share a classpath.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
libs="$root/.tools/kafka4/libs"
stamp="$root/.tools/kafka4/.pom.sha256"
want=$(sha256sum "$root/tools/kafka4/pom.xml" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -d "$libs" ]; then
  echo "resolving Kafka 4 jars with Maven"
  rm -rf "$libs"; mkdir -p "$libs"
  (cd "$root/tools/kafka4" && mvn -q -B dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime)
  ls "$libs"/kafka_2.13-4.*.jar "$libs"/log4j-slf4j-impl-*.jar >/dev/null
  echo "$want" > "$stamp"
fi
