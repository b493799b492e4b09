#!/usr/bin/env bash
# Stands in for the apache/kafka:4.x image's bin/kafka-run-class.sh: the same main classes, run
# from the Kafka 4 jars that `make setup` resolved into .tools/kafka4/libs (log4j 2: the chart
# passes -Dlog4j2.configurationFile in KAFKA_LOG4J_OPTS). devtools/podspec.py maps /opt/kafka/bin
# of a Kafka 4 image here, and devtools/kafka-bin (Kafka 3.9) for every other tag.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
libs=${KAIRN_KAFKA_LIBS:-$here/../../.tools/kafka4/libs}
[ -d "$libs" ] || { echo "kafka-run-class.sh: $libs is missing: run make setup" >&2; exit 1; }
main=$1; shift
# shellcheck disable=SC2086  # the option variables hold several words on purpose
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1} \
  ${KAFKA_LOG4J_OPTS:-} ${KAFKA_OPTS:-} -Djava.awt.headless=true \
  -cp "$libs/*" "$main" "$@"
