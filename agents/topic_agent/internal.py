"""Topics a declared spec must never touch: Kafka's own (pure; no I/O).

Kafka keeps state in topics of its own, and changing one breaks the cluster quietly: growing
``__consumer_offsets`` moves every consumer group to another coordinator partition
(``hash(group) % partitions``), so their committed offsets look lost. So a topic spec naming
one of these is an ``Error`` and no request is sent for it: not create, grow, reconfigure,
reassign or delete.

A name is internal when
- Kafka says so (``is_internal`` in the topic's metadata), or
- it follows Kafka's own convention for internal topics, the rule of MirrorMaker's
  ``DefaultReplicationPolicy.isInternalTopic``: it starts with ``__`` or ``.``, or ends with
  ``.internal`` or ``-internal`` (``__consumer_offsets``, ``__transaction_state``,
  ``__cluster_metadata``, ``__share_group_state``, ``__remote_log_metadata``, MirrorMaker 2's
  ``mm2-offsets.<cluster>.internal`` ...), or
- it is the default name of a Kafka Connect distributed worker's internal topic
  (``connect-offsets``, ``connect-configs``, ``connect-status``, as in Kafka's
  ``config/connect-distributed.properties``).

There is no read-only adoption: a ConfigMap that names an internal topic stays ``Error`` (a
paused one, ``kairn.dev/managed: "false"``, stays paused and touches nothing, like any other).
To look at internal topics, use Kafka's tools (``kafka-topics.sh --describe``).
"""

from __future__ import annotations

CONNECT_DEFAULTS = frozenset({"connect-offsets", "connect-configs", "connect-status"})


def internal_reason(name: str, kafka_says_internal: bool = False) -> str | None:
    """Why ``name`` is a topic kairn must leave alone, or None when it may be managed."""
    if kafka_says_internal:
        why = "Kafka reports it as an internal topic"
    elif name.startswith(("__", ".")):
        why = "names that start with '__' or '.' are Kafka's internal topics"
    elif name.endswith((".internal", "-internal")):
        why = (
            "names that end with '.internal' or '-internal' are internal topics of Kafka's "
            "own components"
        )
    elif name in CONNECT_DEFAULTS:
        why = "it is a default internal topic of Kafka Connect"
    else:
        return None
    return (
        f"topic {name} is not managed by kairn: {why}, and changing one (partitions, "
        "replicas, config, deletion) can break the cluster or lose consumer offsets. "
        "Remove this ConfigMap, or declare a topic of your own"
    )
