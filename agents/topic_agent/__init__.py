"""ConfigMap -> Kafka topic reconciler (kairn-topic-agent)."""
