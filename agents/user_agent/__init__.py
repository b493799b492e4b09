"""ConfigMap -> Kafka user, ACLs and quotas reconciler (kairn-user-agent)."""
