#!/usr/bin/env bash
# Stands in for the apache/kafka image's bin/kafka-run-class.sh: the same main classes, run from
# the Kafka 3.9 jars that `make setup` resolved into .tools/kafka/libs. It honours the variables
# the chart sets (KAFKA_HEAP_OPTS, KAFKA_LOG4J_OPTS, KAFKA_OPTS, KAFKA_JVM_PERFORMANCE_OPTS).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
libs=${KAIRN_KAFKA_LIBS:-$here/../../.tools/kafka/libs}
[ -d "$libs" ] || { echo "kafka-run-class.sh: $libs is missing: run make setup" >&2; exit 1; }
main=$1; shift
# shellcheck disable=SC2086  # the option variables hold several words on purpose
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1} \
  ${KAFKA_LOG4J_OPTS:-} ${KAFKA_OPTS:-} -Djava.awt.headless=true \
  -cp "$libs/*" "$main" "$@"
