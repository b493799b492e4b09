"""kairn-roller: the upgrade hooks. `preflight` refuses an upgrade of an unhealthy cluster;
`roll` restarts ZooKeeper and Kafka pods in a controller-aware order without taking a partition
below min.insync.replicas.

Layout: `model` (plain data), `plan` (pure decisions), `zk`, `kafka`, `kube` (adapters),
`run` (the roll and preflight loops over the adapters), `cli`.
"""
